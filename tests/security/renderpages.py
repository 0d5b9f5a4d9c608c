"""Pages for the render guard's scenario (21), and the canaries that see what Chromium reached.

`RecordingServer(routes, host=...)` is a threaded HTTP server on a loopback
address serving a fixed map of path -> `Page` (a page may be answered after a
delay, which holds a rendered page's load event open while its scripts
reach out). It counts every TCP connection it accepts and logs every request
path: a canary. `UdpCanary` counts the datagrams sent to a UDP port (a STUN
request of WebRTC). `guarded_site` is the scenario's site.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Page:
    """One canned answer, sent after `delay` seconds."""

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"})
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: RecordingServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner.lock:
            self.owner.connections += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        owner = self.server.owner
        with owner.lock:
            owner.paths.append(self.path)
        page = owner.routes.get(self.path.split("?", 1)[0]) or Page(b"not here", 404)
        time.sleep(page.delay)
        self.send_response(page.status)
        for name, value in page.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(page.body)))
        self.end_headers()
        self.wfile.write(page.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request log is `paths`


class RecordingServer:
    """A threaded HTTP server of canned pages on an IPv4 loopback address; a context manager."""

    def __init__(self, routes: Mapping[str, Page] | None = None, *,
                 host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Page] = dict(routes or {})
        self.lock = threading.Lock()
        self.connections = 0
        self.paths: list[str] = []
        self._server = _Server((host, 0), self)
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class UdpCanary:
    """A UDP socket on 127.0.0.1 counting the datagrams it receives; a context manager."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, daemon=True)

    def _count(self) -> None:
        while not self._stop.is_set():
            try:
                self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams += 1

    def __enter__(self) -> UdpCanary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def guarded_site(internal: str, stun_port: int) -> dict[str, Page]:
    """The public site: a page whose scripts reach `internal` (an origin), and a redirect there.

    `/` loads a script from `internal`, fetch()es and XHRs it (and its port
    on 127.0.0.1 and localhost, which Chromium must not bypass), opens a
    WebSocket to it, asks WebRTC to use a TURN server on it (TCP) and a STUN
    server on 127.0.0.1:`stun_port` (UDP); `/slow.js` holds the page's load
    event for two seconds so that all of them are on their way before Chromium
    is done. `/moved` is a 301 to `internal`.
    """
    host = internal.split("//", 1)[1]
    port = host.rsplit(":", 1)[1]
    script = f"""
      fetch("{internal}/fetch").catch(() => 0);
      fetch("http://127.0.0.1:{port}/literal").catch(() => 0);
      fetch("http://localhost:{port}/localhost").catch(() => 0);
      try {{ const x = new XMLHttpRequest(); x.open("GET", "{internal}/xhr"); x.send(); }}
      catch (e) {{}}
      try {{ new WebSocket("ws://{host}/ws"); }} catch (e) {{}}
      const pc = new RTCPeerConnection({{iceServers: [
        {{urls: "stun:127.0.0.1:{stun_port}"}},
        {{urls: "turn:{host}?transport=tcp", username: "u", credential: "p"}}]}});
      pc.createDataChannel("d");
      pc.createOffer().then(o => pc.setLocalDescription(o));
    """
    start = (f"<!DOCTYPE html><html><head><title>guarded</title></head><body>"
             f"<p>A page that reaches out.</p><a href=\"/moved\">moved</a>"
             f"<script>{script}</script>"
             f"<script src=\"{internal}/script.js\"></script>"
             f"<script src=\"/slow.js\"></script></body></html>")
    return {
        "/": Page(start.encode()),
        "/slow.js": Page(b"document.title = 'guarded';", delay=2.0,
                         headers={"Content-Type": "text/javascript"}),
        "/moved": Page(b"", 301, {"Location": f"{internal}/target"}),
        "/robots.txt": Page(b"User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"}),
    }
