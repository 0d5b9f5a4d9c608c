"""An async client for the scrapyd nodes in `SCRAPYD_URLS`.

httpx with timeouts; the credentials in a node's URL become basic auth and are
never shown (a node is named by its index and `host:port`). scrapyd answers many
errors with HTTP 200 and `{"status": "error", "message": ...}`, so every answer's
body is checked, not only its status code.

Retries: reads and `cancel.json` are retried on any transport error; the
non-idempotent `schedule.json` only when the connection was never made (a
timed-out schedule may have started a process, and a retry would start another).

Errors: a node that cannot be reached is `ScrapydUnavailable` (503); a node that
answers with an error is `ScrapydError` (502).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from jobapi.errors import ApiError, BadGateway, ServiceUnavailable

PROJECT = "crawlgraph"
log = logging.getLogger("jobapi.scrapyd")


class ScrapydError(BadGateway):
    """A scrapyd node answered with an error."""

    code = "scrapyd_error"


class ScrapydUnavailable(ServiceUnavailable):
    """A scrapyd node cannot be reached."""

    code = "scrapyd_unavailable"


class Node:
    """One scrapyd node: its base URL without credentials, and its basic auth."""

    def __init__(self, index: int, url: str) -> None:
        parts = urlsplit(url)
        self.index = index
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        self.base = parts._replace(netloc=netloc, path=parts.path.rstrip("/"), query="",
                                   fragment="").geturl()
        self.auth = (
            httpx.BasicAuth(parts.username or "", parts.password or "")
            if parts.username or parts.password else None
        )
        self.name = f"scrapyd[{index}] {netloc}"


class ScrapydClient:
    """Schedules, cancels and inspects crawler processes on the scrapyd nodes."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        project: str = PROJECT,
        timeout: float = 10.0,
        connect_timeout: float = 2.0,
        retries: int = 2,
        backoff: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.nodes = [Node(i, url) for i, url in enumerate(urls)]
        self.project = project
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout), transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def node_of(self, entry: dict[str, Any]) -> Node:
        """The node of a recorded process (`{"node", "node_url", "jobid"}`), by URL first."""
        for node in self.nodes:
            if node.base == entry.get("node_url"):
                return node
        return self.node(int(entry.get("node", 0)))

    def node(self, index: int) -> Node:
        return self.nodes[index % len(self.nodes)]

    async def place(self, count: int) -> list[Node]:
        """Nodes for `count` new processes: the least busy first, nodes that do not answer
        skipped. Raises the first node's error when none answers."""

        async def busy(node: Node) -> tuple[int, Node] | ApiError:
            try:
                status = await self.daemon_status(node)
            except ApiError as exc:
                return exc
            return int(status.get("pending", 0)) + int(status.get("running", 0)), node

        answers = await asyncio.gather(*(busy(node) for node in self.nodes))
        load = {node.index: n for n, node in (a for a in answers if not isinstance(a, ApiError))}
        if not load:
            raise next(a for a in answers if isinstance(a, ApiError))
        chosen = []
        for _ in range(count):
            index = min(load, key=lambda i: (load[i], i))
            load[index] += 1
            chosen.append(self.nodes[index])
        return chosen

    async def schedule(
        self, node: Node, spider: str, jobid: str, args: Mapping[str, str],
        settings: Mapping[str, str], priority: float = 0.0,
    ) -> str:
        """Start one crawler process; return its scrapyd job id."""
        data: dict[str, str | list[str]] = {
            **args, "project": self.project, "spider": spider, "jobid": jobid,
            "priority": str(priority),
            "setting": [f"{name}={value}" for name, value in settings.items()],
        }
        body = await self._call(node, "POST", "schedule.json", data=data, idempotent=False)
        return str(body.get("jobid", jobid))

    async def cancel(self, node: Node, jobid: str, signal: str = "INT") -> str | None:
        """Stop a pending or running process; return its previous state (None: unknown)."""
        body = await self._call(
            node, "POST", "cancel.json",
            data={"project": self.project, "job": jobid, "signal": signal},
        )
        return body.get("prevstate")

    async def list_jobs(self, node: Node) -> dict[str, list[dict[str, Any]]]:
        return await self._call(node, "GET", "listjobs.json", params={"project": self.project})

    async def daemon_status(self, node: Node) -> dict[str, Any]:
        return await self._call(node, "GET", "daemonstatus.json")

    async def log_tail(self, node: Node, spider: str, jobid: str,
                       max_bytes: int) -> tuple[bytes, bool] | None:
        """The last `max_bytes` of a process's log and whether it was cut (None: no log).

        scrapyd serves its logs as files under ``/logs/<project>/<spider>/<job>.log``.
        A HEAD gives the size and a Range from ``size - max_bytes`` the tail (a
        suffix Range longer than the file fails inside scrapyd's file server).
        """
        url = f"{node.base}/logs/{self.project}/{spider}/{jobid}.log"
        try:
            head = await self._http.head(url, auth=node.auth)
            if head.status_code == 404:
                return None
            if head.is_error:
                self._log_refused(node, jobid, head)
            size = int(head.headers.get("Content-Length", "0"))
            if size == 0:
                return None
            start = max(0, size - max_bytes)
            response = await self._http.get(url, auth=node.auth,
                                            headers={"Range": f"bytes={start}-{size - 1}"})
        except httpx.TransportError as exc:
            raise ScrapydUnavailable(
                f"{node.name} cannot be reached ({type(exc).__name__}).",
                hint="Check that scrapyd runs and that SCRAPYD_URLS points at it.") from None
        if response.is_error:
            self._log_refused(node, jobid, response)
        return response.content[-max_bytes:], start > 0

    @staticmethod
    def _log_refused(node: Node, jobid: str, response: httpx.Response) -> None:
        raise ScrapydError(f"{node.name} refused the log of {jobid}: "
                           f"HTTP {response.status_code}")

    async def _call(
        self, node: Node, method: str, endpoint: str, *, idempotent: bool = True, **kwargs: Any,
    ) -> dict[str, Any]:
        url = f"{node.base}/{endpoint}"
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, url, auth=node.auth, **kwargs)
                break
            except httpx.TransportError as exc:
                retryable = idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if not retryable or attempt >= self.retries:
                    log.warning("%s %s: %s", node.name, endpoint, type(exc).__name__)
                    raise ScrapydUnavailable(
                        f"{node.name} cannot be reached ({type(exc).__name__}).",
                        hint="Check that scrapyd runs and that SCRAPYD_URLS points at it.",
                    ) from None
                attempt += 1
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        if response.status_code == 401:
            raise ScrapydError(
                f"{node.name} refused the credentials.",
                hint="Check the user and password in SCRAPYD_URLS.",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "ok" or response.is_error:
            message = str(body.get("message", "")) if isinstance(body, dict) else ""
            message = message.strip()[:300] or f"HTTP {response.status_code}"
            raise ScrapydError(
                f"{node.name} refused {endpoint}: {message}",
                hint="Check the spider name and the scrapyd project (crawlgraph).",
            )
        return body
