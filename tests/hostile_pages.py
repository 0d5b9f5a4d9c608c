"""Hostile web pages and a small HTTP server for the attack scenarios (tests/security).

`PageServer(routes, host=...)` serves a fixed map of path -> `Reply` from a
thread of the test process, on a free port of any loopback address (several
servers on 127.0.0.1, 127.0.0.3, [::1] act as different hosts); a reply may be
sent after a delay (which holds a rendered page's load event open). It counts every
TCP connection it accepts and logs every request path, so a test can assert
that nothing reached it (`connections == 0`): a canary.

`hostile_site(origin)` is the site of scenario 17: pages with invalid
encodings, NUL bytes, 1 MB attributes, deeply nested markup and broken hrefs,
each also linking to one plain page (`/ok/<name>`) so that a test can tell the
page's links were read, not dropped.

`store_scraped(database_url, origin, responses)` puts hostile responses
through the spider kit of a new job and stores their pages with the real
storage pipeline, for a test to read what was stored.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from scrapy.http import Response

from crawler.items import Page
from crawler.pipelines.storage import StoragePipeline
from tests.graphdata import make_job, make_user
from tests.spiders.kit import kit_crawler, scrape


@dataclass(frozen=True)
class Reply:
    """One canned answer, sent after `delay` seconds."""

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"})
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: int, owner: PageServer) -> None:
        self.address_family = family
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner.lock:
            self.owner.connections += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _reply(self, head_only: bool) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.paths.append(self.path)
        reply = owner.routes.get(self.path.split("?", 1)[0])
        if reply is None:
            reply = Reply(b"not found", 404, {"Content-Type": "text/plain"})
        time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(reply.body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._reply(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._reply(head_only=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request log is `paths`


class PageServer:
    """A threaded HTTP server of canned replies on a loopback address; a context manager."""

    def __init__(self, routes: Mapping[str, Reply] | None = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.routes: dict[str, Reply] = dict(routes or {})
        self.host = host
        self.lock = threading.Lock()
        self.connections = 0
        self.paths: list[str] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = _Server((host, port), family, self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- scenario 17: hostile pages ------------------------------------------------------------

HTML = "text/html; charset=utf-8"
MB = 1024 * 1024


def _page(title: bytes, body: bytes, ok: bytes) -> bytes:
    return (b"<!DOCTYPE html><html><head><title>" + title + b"</title></head><body>" + body
            + b'<a href="' + ok + b'">plain link</a></body></html>')


def hostile_site(origin: str) -> dict[str, Reply]:
    """name -> (path /h/<name>) hostile pages, each linking to /ok/<name>; plus the start page."""
    pages: dict[str, tuple[str, bytes, bytes]] = {
        # Declared UTF-8, but the bytes are not.
        "bad-utf8": (HTML, b"caf\xe9 \xff\xfe", b"<p>\xc3\x28 \xa0\xa1 \xf0\x28\x8c\xbc</p>"),
        # A charset nobody knows, and one that lies (UTF-16 declared, ASCII sent).
        "unknown-charset": ("text/html; charset=x-no-such-charset", b"unknown", b"<p>text</p>"),
        "lying-utf16": ("text/html; charset=utf-16", b"ascii", b"<p>plain ascii</p>"),
        # NUL bytes in the title, the text, an href and the anchor text.
        "nul": (HTML, b"nul\x00title", b'<p>a\x00b</p><a href="/x\x00y">anchor\x00text</a>'
                b'<a href="/nul\x00target">n</a>'),
        # A 1 MB attribute, a 1 MB href and a 1 MB title.
        "huge-attribute": (HTML, b"t" * MB,
                           b'<div data-x="' + b"a" * MB + b'">x</div>'
                           b'<a href="/' + b"h" * MB + b'">long</a>'),
        # 100,000 nested elements (past libxml2's default depth limit).
        "deep": (HTML, b"deep", b"<div>" * 100_000 + b'<a href="/deep-link">in</a>'
                 + b"</div>" * 100_000),
        # hrefs that are not URLs, or URLs that do not parse.
        "bad-hrefs": (HTML, b"hrefs",
                      b'<a href="http://[::1">v6</a><a href="http://[">open</a>'
                      b'<a href="http://a:99999999/">port</a><a href="http://%zz/">pct</a>'
                      b'<a href="javascript:alert(1)">js</a><a href="\xff\xfe">bytes</a>'),
        # A <base href> that does not parse, which every link is resolved against.
        "bad-base": (HTML, b"base", b'<base href="http://[bad"><a href="relative">r</a>'),
        # Binary garbage served as HTML.
        "binary": (HTML, b"", bytes(range(256)) * 64),
        # A lone UTF-16 surrogate, written as UTF-8 bytes (CESU style), in the title.
        "surrogate": (HTML, b"sur\xed\xa0\x80rogate", b"<p>\xed\xb0\x80</p>"),
    }
    routes: dict[str, Reply] = {}
    start = [b"<!DOCTYPE html><html><head><title>start</title></head><body>"]
    for name, (ctype, title, body) in pages.items():
        ok = f"/ok/{name}".encode()
        routes[f"/h/{name}"] = Reply(_page(title, body, ok), headers={"Content-Type": ctype})
        routes[f"/ok/{name}"] = Reply(b"<html><head><title>ok</title></head><body>ok</body>"
                                      b"</html>")
        start.append(f'<a href="/h/{name}">{name}</a>'.encode())
    start.append(b"</body></html>")
    routes["/"] = Reply(b"".join(start))
    routes["/robots.txt"] = Reply(b"User-agent: *\nAllow: /\n", headers={
        "Content-Type": "text/plain"})
    return routes


HOSTILE_NAMES = ["bad-utf8", "unknown-charset", "lying-utf16", "nul", "huge-attribute", "deep",
                 "bad-hrefs", "bad-base", "binary", "surrogate"]


def store_scraped(database_url: str, origin: str,
                  responses: Iterable[Response]) -> tuple[uuid.UUID, int]:
    """The Pages the spider kit makes of `responses`, stored for a new job (start URL
    `origin`/) by the real storage pipeline: the job's id and its dead letters' count."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
    crawler = kit_crawler({"start_urls": origin + "/", "job_id": str(job)},
                          {"CRAWLGRAPH_DATABASE_URL": database_url})
    storage = StoragePipeline.from_crawler(crawler)
    pages = [o for response in responses for o in scrape(crawler, response)
             if isinstance(o, Page)]

    async def store() -> None:
        await storage.open_spider()
        for item in pages:
            storage.process_item(item)
        await storage.close_spider()

    asyncio.run(store())
    with psycopg.connect(database_url) as conn:
        dead = conn.execute("SELECT count(*) FROM dead_letters WHERE job_id = %s",
                            (job,)).fetchone()[0]
    return job, dead
