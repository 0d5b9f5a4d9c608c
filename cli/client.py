"""`ApiClient`: the command line's HTTP client of the job API, which logs in by itself.

It logs in with `CRAWLGRAPH_USERNAME`/`CRAWLGRAPH_PASSWORD` if set, else with
the local stack's admin from `credentials.json` in the data directory
(`CRAWLGRAPH_HOME`, default `.crawlgraph/`). The token is cached in the data
directory (`token.json`, mode 0600) until shortly before it expires.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from core.errors import CrawlgraphError
from core.settings import Settings, read_credentials

TOKEN_FILE = "token.json"


class ApiCallError(CrawlgraphError):
    """The API answered with an error, or could not be reached."""


class ApiClient:
    """A small synchronous client of the job API that logs in by itself."""

    def __init__(self, settings: Settings, api_url: str | None = None,
                 timeout: float = 30.0) -> None:
        self.settings = settings
        self.base = (api_url or settings.api_url).rstrip("/")
        self.http = httpx.Client(base_url=self.base, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    # credentials and token -------------------------------------------------------

    def _credentials(self) -> tuple[str, str]:
        username, password = self.settings.username, self.settings.password
        if username and password:
            return username, password
        creds = read_credentials(self.settings.home)
        if creds.get("admin_username") and creds.get("admin_password"):
            return creds["admin_username"], creds["admin_password"]
        raise ApiCallError(
            "No credentials for the API.",
            hint="Set CRAWLGRAPH_USERNAME and CRAWLGRAPH_PASSWORD, or run `crawlgraph up` "
            "(it writes the admin login into the data directory).",
        )

    def _token_path(self) -> Path:
        return self.settings.home / TOKEN_FILE

    def _cached_token(self, username: str) -> str | None:
        try:
            cached = json.loads(self._token_path().read_text())
        except (OSError, ValueError):
            return None
        if (cached.get("api") == self.base and cached.get("username") == username
                and cached.get("expires_at", 0) > time.time() + 60):
            return cached.get("access_token")
        return None

    def _store_token(self, username: str, token: str, expires_in: int) -> None:
        path = self._token_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"api": self.base, "username": username, "access_token": token,
                           "expires_at": time.time() + expires_in}, fh)
            os.chmod(path, 0o600)
        except OSError:
            pass  # a cache only: logging in again next time is fine

    def token(self, *, fresh: bool = False) -> str:
        username, password = self._credentials()
        if not fresh:
            self._token = self._token or self._cached_token(username)
            if self._token:
                return self._token
        body = self._send("POST", "/api/v1/auth/token", auth=False,
                          json={"username": username, "password": password})
        self._token = body["access_token"]
        self._store_token(username, self._token, int(body.get("expires_in", 0)))
        return self._token

    # requests -----------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._send(method, path, **kwargs)
        except ApiCallError as exc:
            if getattr(exc, "status", None) != 401:
                raise
            self.token(fresh=True)  # the cached token expired or the secret changed
            return self._send(method, path, **kwargs)

    def _send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ApiCallError(
                f"Cannot reach the API at {self.base} ({type(exc).__name__}).",
                hint="Start the local stack with `crawlgraph up`, or pass --api-url.",
            ) from None
        if response.is_success:
            return response.json() if response.content else None
        try:
            error = response.json()["error"]
            message, hint = error["message"], error.get("hint")
        except (ValueError, KeyError, TypeError):
            message, hint = f"HTTP {response.status_code}", None
        exc = ApiCallError(f"{message} (HTTP {response.status_code})", hint=hint)
        exc.status = response.status_code  # type: ignore[attr-defined]
        raise exc


def client_for(args: argparse.Namespace) -> ApiClient:
    """The client of the API that `--api-url` names (default: the local stack's)."""
    return ApiClient(Settings.from_env(), api_url=args.api_url)


def call_once(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    """One call of the API that `--api-url` names, with a client of its own."""
    client = client_for(args)
    try:
        return client.call(method, path, **kwargs)
    finally:
        client.close()
