"""The job API as a local service."""

from __future__ import annotations

import sys

import httpx

from stack.service import Service
from stack.settings import REPO_ROOT
from stack.supervise import START_TIMEOUT, wait_until


class Api(Service):
    """The job API served by uvicorn on loopback, in `CRAWLGRAPH_API_WORKERS` processes."""

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

    def config(self) -> str:
        base = super().config()
        # Another worker count restarts the API (one worker: as before there was a count).
        workers = self.settings.api_workers
        return base if workers == 1 else f"{base} workers={workers}"

    def start(self, creds: dict[str, str]) -> None:
        env = dict(self.environ)
        env["CRAWLGRAPH_HOME"] = str(self.home)
        self._spawn(server_command("jobapi.app:app_from_env", self.settings.api_host, self.port,
                                   self.settings.api_workers), env, REPO_ROOT)
        wait_until(self.healthy, START_TIMEOUT, "the API", self.logfile)


def server_command(factory: str, host: str, port: int, workers: int) -> list[str]:
    """The uvicorn command that serves the API app `factory` makes, in `workers` processes.

    The benchmark (bench/api.py) serves its app with this command too.
    """
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", host,
            "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning",
            # The app decides whose X-Forwarded-For to believe
            # (CRAWLGRAPH_TRUSTED_PROXIES); uvicorn's own handling would believe
            # any client on 127.0.0.1 and let it reset the login rate limit.
            "--no-proxy-headers"]
