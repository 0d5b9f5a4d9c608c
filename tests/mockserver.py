"""A local mock web server for crawl tests and benchmarks, run in a subprocess.

`MockServer(pages=..., seed=..., tricky=..., robots=...)` starts
`python -m tests.mockserver` on 127.0.0.1 and a free port; every instance is a
separate "host". It serves the site `tests.sitegen.generate_site` generates
from the same parameters (the instance's `site` attribute is that ground
truth), and logs every request it receives (method, path, Host, port, user
agent, time, headers, the client's address) as JSON lines that `requests()` reads back.

It is a small asyncio HTTP/1.1 server with keep-alive (several thousand
requests per second on one core), written directly on streams so that it can
misbehave on purpose. Endpoints besides the generated pages (`/p/N` and the
tricky site's `/r/`, `/rr/`, `/t/`, `/missing/`):

- `/robots.txt` - content, status and a chain of redirects set per instance;
  `robots_hold=N` holds every answer to `/robots.txt` until N requests for it
  have arrived (at most `robots_hold_timeout` seconds): a crawler process that
  asks cannot fetch a page before N processes have asked (each asks once);
  `robots_outage=N` makes the first N requests for `/robots.txt` fail with
  `robots_outage_status` (503 by default; 0 drops the connection) before it
  answers as configured: the (N+1)-th request in the log is the first answer
- `/redirect?to=URL&status=302` - a redirect anywhere (also to private addresses)
- `/delay?s=SECONDS` - a slow response
- `/status/CODE?retry_after=N` - that status, with `Retry-After` when asked
- `/flaky/KEY?fail=N&status=503&retry_after=N` - fails N times, then answers 200
- `/drop` (no response at all), `/drop-mid` (headers and half a body, then closed)
- `/js` (no links or text until its script runs), `/js-partial` (text and one
  static link; the `.js-link` links appear only after the script runs)
- `/bomb?mb=N` - a gzip bomb (small on the wire, N MiB inflated)
- `/endless` - a chunked body that never ends
- `/bad-length?mode=short|hang` - a Content-Length larger than the body, then
  the connection is closed (short) or left open (hang)
- `/large?kb=N[&chunked=1]` - a big plain body
- `/captcha?status=200` - a CAPTCHA challenge page
- `/headers` - the request headers echoed as JSON
- `/sitemap.xml` - a sitemap of the first pages

With `conditional=True` a generated page carries an `ETag` and a
`Last-Modified` (both from its body) and is answered `304` without a body
when `If-None-Match` names its ETag (or, without one, `If-Modified-Since`
is its Last-Modified); every such answer's status and body size is logged
(`responses()`). `version=N` serves version N of the site
(`tests.siteversions.evolve`: pages changed, removed, added; its keyword
arguments in `version_changes`), also set on a running server with
`configure(version=N)`. `page_bytes=N` grows each generated HTML page to N
bytes with a paragraph before `</body>` (real pages weigh tens of kilobytes;
the links, titles and validators' changes stay those of the site).

Per-instance `page_delay` slows every generated page, and `faults` maps a path
to the statuses its first requests get (with `Retry-After: retry_after`).
`configure(...)` changes robots.txt and faults of a running instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import os
import posixpath
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.sitegen import JS_PAGE, Site, generate_site
from tests.siteversions import evolve

REPO = Path(__file__).resolve().parent.parent
ADMIN_PREFIX = "/__admin/"
# What `configure` may change that changes the site served (both sides regenerate it).
SITE_KEYS = frozenset({"version", "version_changes"})
_UNRESERVED_PCT = re.compile(r"%(2[DdEe]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee])")

REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           303: "See Other", 307: "Temporary Redirect", 308: "Permanent Redirect",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           410: "Gone", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}

CAPTCHA_PAGE = b"""<!DOCTYPE html><html><head><title>Attention Required! | Are you a robot?</title>
</head><body><h1>Please verify you are a human</h1>
<form action="/captcha/verify"><div class="g-recaptcha" data-sitekey="test-key"></div>
<p>Complete the CAPTCHA to continue.</p></form></body></html>
"""


_FILLER = (b"A paragraph of body text, as pages carry around their links: navigation, "
           b"articles, footers. ")


def padded(body: bytes, size: int) -> bytes:
    """An HTML page grown to `size` bytes by a paragraph before `</body>` (the same text for
    the same page: its validators change only when the page does)."""
    missing = size - len(body) - len(b"<p></p>")
    at = body.rfind(b"</body>")
    if missing <= 0 or at < 0:
        return body
    filler = (_FILLER * (missing // len(_FILLER) + 1))[:missing]
    return body[:at] + b"<p>" + filler + b"</p>" + body[at:]


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it."""

    method: str
    path: str  # the request target as sent (path and query)
    host: str  # the Host header
    port: int  # the port it arrived on
    user_agent: str
    time: float  # arrival, seconds since the epoch
    headers: dict[str, str]  # lower-cased names
    peer: str = ""  # the client's address: which machine (or namespace) asked


# ---------------------------------------------------------------- server side
class _Server:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.site: Site = _site(config)
        self.log = open(config["log"], "a", buffering=1 << 16)  # noqa: SIM115
        self.answers = open(config["log"] + ".answers", "a", buffering=1)  # noqa: SIM115
        self.port = 0
        self.fault_counts: dict[str, int] = {}
        self._bomb: dict[int, bytes] = {}
        self._robots_asked = 0
        self._robots_failed = 0
        self._robots_open = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                keep = (version == "HTTP/1.1"
                        and headers.get("connection", "").lower() != "close")
                if target.startswith(ADMIN_PREFIX):
                    await self._admin(writer, target, body)
                    continue
                self._log(method, target, headers, writer)
                keep = await self.respond(writer, method, target, headers) and keep
                if not keep:
                    break
        except ConnectionError:
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _log(self, method: str, target: str, headers: dict[str, str],
             writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("",)
        entry = {"method": method, "path": target, "host": headers.get("host", ""),
                 "port": self.port, "user_agent": headers.get("user-agent", ""),
                 "time": time.time(), "headers": headers, "peer": peer[0]}
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()

    async def _admin(self, writer: asyncio.StreamWriter, target: str, body: bytes) -> None:
        if target.startswith(ADMIN_PREFIX + "config") and body:
            changes = json.loads(body)
            self.config.update(changes)
            if "faults" in changes:
                self.fault_counts.clear()
            if SITE_KEYS & changes.keys():
                self.site = _site(self.config)
        await self._send(writer, 200, {"Content-Type": "application/json"},
                         json.dumps({k: v for k, v in self.config.items()
                                     if k != "log"}).encode())

    async def _send(self, writer: asyncio.StreamWriter, status: int,
                    headers: dict[str, str], body: bytes, *, head_only: bool = False) -> None:
        out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Server", "crawlgraph-mock")
        out += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(body)
        await writer.drain()

    def _html(self, text: str) -> bytes:
        return (f"<!DOCTYPE html><html><head><title>{text}</title></head>"
                f"<body><p>{text}</p></body></html>\n").encode()

    async def respond(self, writer: asyncio.StreamWriter, method: str, target: str,
                      headers: dict[str, str]) -> bool:
        """Answer one request; False closes the connection afterwards."""
        split = urlsplit(target)
        raw_path = split.path or "/"
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        path = normalize_path(raw_path)
        html = {"Content-Type": "text/html; charset=utf-8"}
        send = self._send
        head = method == "HEAD"

        if path == "/robots.txt" or path.startswith("/robots-"):
            return await self._robots(writer, path, head)

        faults = self.config.get("faults") or {}
        if path in faults:
            n = self.fault_counts.get(path, 0)
            self.fault_counts[path] = n + 1
            if n < len(faults[path]):
                status = int(faults[path][n])
                extra = {"Retry-After": str(self.config["retry_after"])} \
                    if self.config.get("retry_after") is not None else {}
                await send(writer, status, {**html, **extra}, self._html(f"fault {status}"),
                           head_only=head)
                return True

        if path in self.site.redirects:
            status, location = self.site.redirects[path]
            await send(writer, status, {"Location": location}, b"", head_only=head)
            return True
        if self.config.get("page_delay") and path.startswith("/p/"):
            await asyncio.sleep(float(self.config["page_delay"]))
        origin = f"http://{headers.get('host') or f'127.0.0.1:{self.port}'}"
        rendered = self.site.render(path, origin)
        if rendered is not None:
            status, ctype, body = rendered
            if self.config.get("page_bytes") and ctype.startswith("text/html"):
                body = padded(body, int(self.config["page_bytes"]))
            extra: dict[str, str] = {}
            if self.config.get("conditional") and status == 200:
                extra, status, body = self._conditional(headers, body)
                self.answers.write(json.dumps({"path": target, "status": status,
                                               "bytes": len(body)}) + "\n")
            await send(writer, status, {"Content-Type": ctype, **extra}, body, head_only=head)
            return True

        if path == "/redirect":
            status = int(query.get("status", 302))
            await send(writer, status, {"Location": query.get("to", "/")}, b"", head_only=head)
        elif path == "/delay":
            await asyncio.sleep(float(query.get("s", 1)))
            await send(writer, 200, html, self._html("slow"), head_only=head)
        elif m := re.fullmatch(r"/status/(\d{3})", path):
            status = int(m.group(1))
            extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
            await send(writer, status, {**html, **extra}, self._html(f"status {status}"),
                       head_only=head)
        elif m := re.fullmatch(r"/flaky/([\w-]+)", path):
            key = "flaky:" + m.group(1)
            n = self.fault_counts.get(key, 0)
            self.fault_counts[key] = n + 1
            if n < int(query.get("fail", 1)):
                status = int(query.get("status", 503))
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                await send(writer, status, {**html, **extra}, self._html("try later"),
                           head_only=head)
            else:
                await send(writer, 200, html, self._html("recovered"), head_only=head)
        elif path == "/drop":
            writer.transport.abort()
            return False
        elif path == "/drop-mid":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                         b"Content-Length: 2000\r\n\r\n" + b"<html><body>" + b"x" * 500)
            await writer.drain()
            writer.transport.abort()
            return False
        elif path == "/js":
            await send(writer, 200, html, (JS_PAGE % json.dumps(list(self.site.js_links)))
                       .encode(), head_only=head)
        elif path == "/js-partial":
            page = JS_PAGE % json.dumps(list(self.site.js_links))
            page = page.replace('<div id="app"></div>',
                                '<div id="app"><h1>Catalogue</h1><p>Static text about the '
                                'catalogue.</p><a href="/p/0">home</a></div>')
            await send(writer, 200, html, page.encode(), head_only=head)
        elif path == "/bomb":
            body = self._bomb_body(int(query.get("mb", 100)))
            await send(writer, 200, {**html, "Content-Encoding": "gzip"}, body, head_only=head)
        elif path == "/endless":
            return await self._endless(writer)
        elif path == "/bad-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                         b"Content-Length: 100000\r\n\r\n<html><body>short</body></html>")
            await writer.drain()
            if query.get("mode", "short") == "hang":
                await asyncio.sleep(float(query.get("s", 60)))
            writer.transport.abort()
            return False
        elif path == "/large":
            body = b"<html><body>" + b"y" * (int(query.get("kb", 1024)) * 1024) + b"</body></html>"
            if query.get("chunked"):
                return await self._chunked(writer, body)
            await send(writer, 200, html, body, head_only=head)
        elif path == "/captcha":
            await send(writer, int(query.get("status", 200)), html, CAPTCHA_PAGE, head_only=head)
        elif path == "/headers":
            await send(writer, 200, {"Content-Type": "application/json"},
                       json.dumps(headers).encode(), head_only=head)
        elif path == "/sitemap.xml":
            urls = "".join(f"<url><loc>{origin}/p/{i}</loc></url>"
                           for i in range(min(10, self.config["pages"])))
            body = ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns='
                    f'"http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>').encode()
            await send(writer, 200, {"Content-Type": "application/xml"}, body, head_only=head)
        else:
            await send(writer, 404, html, self._html("not found"), head_only=head)
        return True

    def _conditional(self, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], int,
                                                                            bytes]:
        """Validators of a body, and a 304 with no body when the request's match them."""
        digest = hashlib.blake2b(body, digest_size=8).hexdigest()
        validators = {"ETag": f'"{digest}"',
                      "Last-Modified": formatdate(1_600_000_000 + int(digest, 16) % 10**8,
                                                  usegmt=True)}
        match = headers.get("if-none-match")
        if match is not None:
            fresh = validators["ETag"] in [tag.strip() for tag in match.split(",")]
        else:
            fresh = headers.get("if-modified-since") == validators["Last-Modified"]
        return (validators, 304, b"") if fresh else (validators, 200, body)

    async def _robots(self, writer: asyncio.StreamWriter, path: str, head: bool) -> bool:
        hold = int(self.config.get("robots_hold") or 0)
        if hold and path == "/robots.txt":
            # A barrier: nobody gets robots.txt until `hold` requests for it have come.
            self._robots_asked += 1
            if self._robots_asked >= hold:
                self._robots_open.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._robots_open.wait(),
                                       float(self.config.get("robots_hold_timeout") or 60))
        if path == "/robots.txt" and self._robots_failed < int(self.config.get("robots_outage")
                                                               or 0):
            self._robots_failed += 1
            status = int(self.config.get("robots_outage_status") or 0)
            if status == 0:
                writer.transport.abort()
                return False
            await self._send(writer, status, {"Content-Type": "text/plain"}, b"down",
                             head_only=head)
            return True
        hops = int(self.config.get("robots_redirects") or 0)
        step = 0 if path == "/robots.txt" else int(path[len("/robots-"):].split(".")[0] or 0)
        if step < hops:
            await self._send(writer, 301, {"Location": f"/robots-{step + 1}.txt"}, b"",
                             head_only=head)
            return True
        if self.config.get("robots_delay"):
            await asyncio.sleep(float(self.config["robots_delay"]))
        content = self.config.get("robots")
        status = self.config.get("robots_status")
        if status is None:
            status = 404 if content is None else 200
        if status == 0:  # "unreachable": drop the connection
            writer.transport.abort()
            return False
        await self._send(writer, int(status), {"Content-Type": "text/plain"},
                         (content or "").encode(), head_only=head)
        return True

    def _bomb_body(self, mb: int) -> bytes:
        if mb not in self._bomb:
            # Zeros compress about 1000:1: 100 MiB inflated is about 100 KiB on the wire.
            self._bomb[mb] = gzip.compress(b"\0" * (mb << 20), compresslevel=9)
        return self._bomb[mb]

    async def _chunked(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 65536):
            chunk = body[i:i + 65536]
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _endless(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"<p>" + b"z" * 16380 + b"</p>"
        deadline = time.monotonic() + 600  # bounded even if nobody hangs up
        while time.monotonic() < deadline:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0.005)
        writer.transport.abort()
        return False


def _site(config: dict[str, Any]) -> Site:
    site = generate_site(config["pages"], config["seed"], config["links_per_page"],
                         tricky=config["tricky"])
    return evolve(site, int(config.get("version") or 0),
                  **(config.get("version_changes") or {}))


def normalize_path(path: str) -> str:
    """Resolve dot segments and decode percent-encoded unreserved characters."""
    path = _UNRESERVED_PCT.sub(lambda m: chr(int(m.group(1), 16)), path)
    trailing = path.endswith("/") and path != "/"
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path + ("/" if trailing else "")


async def _serve(config: dict[str, Any]) -> None:
    server = _Server(config)
    srv = await asyncio.start_server(server.handle, config["host"], config["port"],
                                     backlog=1024, reuse_address=True)
    server.port = srv.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.port}", flush=True)
    async with srv:
        await stop.wait()
    server.log.close()


def main() -> None:
    asyncio.run(_serve(json.loads(sys.argv[1])))


# ---------------------------------------------------------------- test side
class MockServer:
    """Handle on one mock server subprocess (one "host"). Use as a context manager."""

    def __init__(self, pages: int = 20, seed: int = 0, links_per_page: int = 5, *,
                 tricky: bool = False, robots: str | None = None,
                 robots_status: int | None = None, robots_redirects: int = 0,
                 robots_delay: float = 0.0, robots_hold: int = 0,
                 robots_hold_timeout: float = 60.0, robots_outage: int = 0,
                 robots_outage_status: int = 503, page_delay: float = 0.0,
                 faults: dict[str, list[int]] | None = None, retry_after: str | int | None = None,
                 host: str = "127.0.0.1", port: int = 0, conditional: bool = False,
                 version: int = 0, page_bytes: int = 0) -> None:
        self._dir = tempfile.mkdtemp(prefix="crawlgraph-mock-")
        self.log_path = Path(self._dir) / "requests.jsonl"
        self.log_path.touch()
        self.config: dict[str, Any] = dict(
            pages=pages, seed=seed, links_per_page=links_per_page, tricky=tricky,
            robots=robots, robots_status=robots_status, robots_redirects=robots_redirects,
            robots_delay=robots_delay, robots_hold=robots_hold,
            robots_hold_timeout=robots_hold_timeout, robots_outage=robots_outage,
            robots_outage_status=robots_outage_status, page_delay=page_delay, faults=faults or {},
            retry_after=retry_after, host=host, port=port, log=str(self.log_path),
            conditional=conditional, version=version, page_bytes=page_bytes)
        self.site = _site(self.config)
        self.host = host
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    @property
    def start_url(self) -> str:
        return self.url(self.site.start_path)

    def start(self, timeout: float = 20.0) -> MockServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mockserver", json.dumps(self.config)],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        # The READY line, or end of output if the server exits; bounded by `timeout`.
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"mock server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc is not None and self._proc.stdout:
            self._proc.stdout.close()
        self._proc = None

    def __enter__(self) -> MockServer:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server and remove its request log."""
        self.stop()
        with contextlib.suppress(OSError):
            self.log_path.unlink()
            Path(str(self.log_path) + ".answers").unlink(missing_ok=True)
            os.rmdir(self._dir)

    def requests(self, path_prefix: str | None = None) -> list[LoggedRequest]:
        """Every request received so far (optionally only paths with this prefix), in order."""
        out = []
        with open(self.log_path) as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # a line still being written
                entry = json.loads(line)
                if path_prefix is None or entry["path"].startswith(path_prefix):
                    out.append(LoggedRequest(**entry))
        return out

    def responses(self) -> list[dict[str, Any]]:
        """Each answer to a generated page with `conditional`: path, status, body bytes."""
        path = Path(str(self.log_path) + ".answers")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def paths(self, path_prefix: str | None = None) -> list[str]:
        return [r.path for r in self.requests(path_prefix)]

    def clear_log(self) -> None:
        # The server appends (O_APPEND), so truncating here is safe while it runs.
        with open(self.log_path, "w"):
            pass

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change robots/faults/delays of the running server; returns its new config."""
        self.config.update(changes)
        if SITE_KEYS & changes.keys():
            self.site = _site(self.config)
        req = urllib.request.Request(self.url(ADMIN_PREFIX + "config"),
                                     data=json.dumps(changes).encode(), method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            return json.loads(resp.read())


if __name__ == "__main__":
    main()
