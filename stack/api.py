"""The job API as a local service."""

from __future__ import annotations

import sys

import httpx

from stack.service import Service
from stack.settings import REPO_ROOT
from stack.supervise import START_TIMEOUT, wait_until


class Api(Service):
    """The job API served by uvicorn on loopback."""

    process_marker = "uvicorn"
    port_setting = "CRAWLGRAPH_API_PORT"

    @property
    def port(self) -> int:
        return self.settings.api_port

    @property
    def address(self) -> str:
        return f"{self.settings.api_host}:{self.port}"

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.settings.api_url}/health", timeout=5)
            # 503 means the API runs but a service it uses is down: that service
            # is the stack's to restart, not the API.
            return response.status_code in (200, 503)
        except httpx.HTTPError:
            return False

    def start(self, creds: dict[str, str]) -> None:
        env = dict(self.environ)
        env["CRAWLGRAPH_HOME"] = str(self.home)
        self._spawn(
            [sys.executable, "-m", "uvicorn", "--factory", "jobapi.app:app_from_env",
             "--host", self.settings.api_host, "--port", str(self.port),
             "--no-access-log", "--log-level", "warning",
             # The app decides whose X-Forwarded-For to believe
             # (CRAWLGRAPH_TRUSTED_PROXIES); uvicorn's own handling would believe
             # any client on 127.0.0.1 and let it reset the login rate limit.
             "--no-proxy-headers"],
            env,
            REPO_ROOT,
        )
        wait_until(self.healthy, START_TIMEOUT, "the API", self.logfile)

