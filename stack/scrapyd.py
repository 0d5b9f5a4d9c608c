"""The embedded scrapyd: loopback, basic auth, running this project from the checkout."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import httpx

from stack.service import Service
from stack.settings import REPO_ROOT
from stack.supervise import START_TIMEOUT, wait_until


class Scrapyd(Service):
    """scrapyd on loopback with basic auth, running this project from the checkout."""

    process_marker = "scrapyd"
    port_setting = "CRAWLGRAPH_SCRAPYD_PORT"

    @property
    def port(self) -> int:
        return self.settings.scrapyd_port

    @property
    def url(self) -> str:
        return self.settings.scrapyd_urls[0]

    @property
    def bind_address(self) -> str:
        """The address it listens on: loopback (the job API never exposes scrapyd)."""
        return "127.0.0.1"

    def healthy(self) -> bool:
        url = urlsplit(self.url)
        auth = (url.username or "", url.password or "")
        base = url._replace(netloc=f"{url.hostname}:{url.port}").geturl()
        try:
            response = httpx.get(f"{base}/daemonstatus.json", auth=auth, timeout=2)
            return response.status_code == 200 and response.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def start(self, creds: dict[str, str]) -> None:
        workdir = self.home / "scrapyd"
        workdir.mkdir(parents=True, exist_ok=True)
        for name in ("scrapyd.conf", "scrapy.cfg"):
            link = workdir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(REPO_ROOT / name)
        env = dict(self.environ)
        env.update(self.settings.service_env())
        env.update(
            SCRAPYD_BIND_ADDRESS=self.bind_address,
            SCRAPYD_HTTP_PORT=str(self.port),
            SCRAPYD_USERNAME=creds["scrapyd_username"],
            SCRAPYD_PASSWORD=creds["scrapyd_password"],
        )
        self._spawn(
            [sys.executable, "-m", "scrapyd", "--pidfile=", f"--logfile={self.logfile}"],
            env,
            workdir,
        )
        wait_until(self.healthy, START_TIMEOUT, "scrapyd", self.logfile)
