"""The render guard's scenario (21): its site, and a canary that sees what Chromium sent by UDP.

The site's pages are `tests.hostile_pages.Reply`, served by its `PageServer`
(a canary too: it counts every TCP connection and logs every request path).
`UdpCanary` counts the datagrams sent to a UDP port (a STUN request of
WebRTC). `guarded_site` is the scenario's site.
"""

from __future__ import annotations

import socket
import threading

from tests.hostile_pages import Reply


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


def guarded_site(internal: str, stun_port: int) -> dict[str, Reply]:
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
        "/": Reply(start.encode()),
        "/slow.js": Reply(b"document.title = 'guarded';", delay=2.0,
                          headers={"Content-Type": "text/javascript"}),
        "/moved": Reply(b"", 301, {"Location": f"{internal}/target"}),
        "/robots.txt": Reply(b"User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"}),
    }
