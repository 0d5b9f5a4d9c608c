"""The render guard: Chromium reaches the network only through the crawler's own guard.

The downloader's address guard (`crawler.middlewares.addressguard`) checks a
rendered request's URL before Chromium gets it, but not what Chromium does
next: redirects, subresources, fetch()/XHR, WebSockets, service workers,
WebRTC. So a crawl that renders starts `crawler.renderproxy.GuardProxy`, a
SOCKS5 proxy on loopback, and Chromium with:

- ``--proxy-server=socks5://127.0.0.1:PORT`` and ``--proxy-bypass-list=<-loopback>``
  (no implicit bypass for loopback or link-local: every TCP connection goes
  to the proxy, which resolves the name with `CRAWLGRAPH_RESOLVE` first,
  refuses private addresses with the downloader's `address_reason` and
  ``CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS``, and connects to exactly the
  address it checked);
- ``--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1``: Chromium
  resolves no name itself (no DNS, no DNS-over-HTTPS around the proxy);
- ``--disable-quic`` and ``--webrtc-ip-handling-policy=disable_non_proxied_udp``:
  no UDP around the proxy (WebRTC falls back to TCP TURN, through it);
- with ``CRAWLGRAPH_CA_BUNDLE``, ``--ignore-certificate-errors-spki-list``
  naming the proxy's own key only: the proxy verifies each server against
  the bundle and answers Chromium with that key (`crawler.rendertls`).

SOCKS5 rather than an HTTP proxy: Chromium sends plain http:// requests to
an HTTP proxy as requests, on connections it reuses across hosts, and a
refusal would read as the site's own answer; through SOCKS5 each connection
is one CONNECT to one host and port, http and https alike.

`install(settings)` (called by `crawler.rendering.configure`) binds the
proxy, adds these switches to ``PLAYWRIGHT_LAUNCH_OPTIONS`` whatever a
project set there, and installs `RenderGuardMiddleware`, which serves the
proxy while the engine runs. A remote browser (``PLAYWRIGHT_CDP_URL``,
``PLAYWRIGHT_CONNECT_URL``) or a context with its own ``proxy`` cannot be
guarded: the crawl stops at start with a `ConfigError`. With
``CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS`` the proxy refuses nothing but still
resolves through `CRAWLGRAPH_RESOLVE`.

A refused connection is counted (``rendering/guard_refused``) and logged
once per host and port with its reason. A navigation that fails at the
proxy (Chromium says only ``net::ERR_SOCKS_CONNECTION_FAILED``) fails with
what the proxy saw: `RenderRefused` (a page error naming the refused host
and address), or the name that does not resolve, the connection refused or
timed out, a certificate that fails (`CRAWLGRAPH_CA_BUNDLE`, through
`crawler.rendertls`), as the plain downloader says them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Self
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from OpenSSL import SSL
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request
from scrapy.settings import Settings
from twisted.internet import error as net

from core.errors import ConfigError, CrawlgraphError
from crawler.middlewares.addressguard import allowed_networks, private_networks_allowed
from crawler.renderproxy import GuardProxy, Outcome
from crawler.rendertls import TlsBridge
from crawler.resolver import HostMap
from crawler.tls import SETTING as CA_BUNDLE_SETTING

logger = logging.getLogger(__name__)

PORT_SETTING = "CRAWLGRAPH_RENDER_GUARD_PORT"  # set by install(), not by hand
MIDDLEWARE = "crawler.renderguard.RenderGuardMiddleware"
_SWITCHES = ("--proxy-server", "--proxy-bypass-list", "--proxy-pac-url", "--no-proxy-server",
             "--proxy-auto-detect", "--host-resolver-rules", "--webrtc-ip-handling-policy",
             "--disable-quic", "--enable-quic", "--ignore-certificate-errors")
_SOCKS_FAILED = "ERR_SOCKS_CONNECTION_FAILED"
_LOGGED_MAX = 1000
# Proxies bound by install(), waiting for their crawl's middleware (by port).
_BOUND: dict[int, GuardProxy] = {}


class RenderRefused(CrawlgraphError):
    """A rendered page's navigation (a redirect) led to a private address."""


def chromium_switches(proxy_url: str) -> list[str]:
    """Chromium's command-line switches sending every connection through the proxy."""
    return [f"--proxy-server={proxy_url}", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--disable-quic", "--webrtc-ip-handling-policy=disable_non_proxied_udp"]


def install(settings: Settings) -> GuardProxy:
    """Bind this crawl's proxy and point Chromium at it (see the module docstring)."""
    for name in ("PLAYWRIGHT_CDP_URL", "PLAYWRIGHT_CONNECT_URL"):
        if settings.get(name):
            raise ConfigError(f"{name} is set: a remote browser's connections cannot be "
                              "guarded against private addresses.",
                              hint="Render with the local Chromium (unset it).")
    for name, kwargs in settings.getdict("PLAYWRIGHT_CONTEXTS").items():
        if isinstance(kwargs, dict) and kwargs.get("proxy"):
            raise ConfigError(f"PLAYWRIGHT_CONTEXTS[{name!r}] has its own proxy: its "
                              "connections would leave the render guard.",
                              hint="Remove the context's proxy.")
    allowed = allowed_networks(settings)
    bundle = settings.get(CA_BUNDLE_SETTING)
    tls = TlsBridge(bundle) if bundle else None
    proxy = GuardProxy(
        hosts=HostMap.from_settings(settings), allowed=allowed, tls=tls,
        allow_private=private_networks_allowed(settings.get("CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS")),
        dns_timeout=settings.getfloat("DNS_TIMEOUT", 60),
        connect_timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 180))
    _BOUND[proxy.port] = proxy
    options = dict(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS"))
    options.pop("proxy", None)
    args = [a for a in options.get("args") or () if not str(a).startswith(_SWITCHES)]
    options["args"] = [*args, *chromium_switches(proxy.url),
                       *(tls.chromium_switches() if tls else ())]
    _set(settings, "PLAYWRIGHT_LAUNCH_OPTIONS", options)
    _set(settings, PORT_SETTING, proxy.port)
    middlewares = dict(settings.getdict("DOWNLOADER_MIDDLEWARES"))
    middlewares[MIDDLEWARE] = 950  # after RenderContextMiddleware (960) in process_exception
    _set(settings, "DOWNLOADER_MIDDLEWARES", middlewares)
    return proxy


def unbind_untaken() -> None:
    """Give back the ports `install` bound for crawlers whose middleware never took them
    (a crawler made but never built, as some tests make)."""
    while _BOUND:
        _BOUND.popitem()[1].unbind()


def _set(settings: Settings, name: str, value: object) -> None:
    """Set a value over whatever a project gave (at its priority, at least the spider's)."""
    priority = max(settings.getpriority(name) or 0, 30)  # 30: "spider"
    settings.set(name, value, priority=priority)


class RenderGuardMiddleware:
    """Downloader middleware serving the crawl's proxy, counting refusals, naming failures."""

    def __init__(self, crawler: Crawler, proxy: GuardProxy) -> None:
        self.crawler = crawler
        self.proxy = proxy
        self._started: WeakKeyDictionary[Request, float] = WeakKeyDictionary()
        self._logged: set[tuple[str, int]] = set()
        proxy.on_refused = self._refused
        crawler.signals.connect(self._start, signals.engine_started)
        crawler.signals.connect(self._stop, signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        proxy = _BOUND.pop(crawler.settings.getint(PORT_SETTING), None)
        if proxy is None:
            raise NotConfigured("no render proxy: this spider renders nothing")
        return cls(crawler, proxy)

    async def _start(self) -> None:
        await self.proxy.start()

    async def _stop(self) -> None:
        await self.proxy.close()

    def _refused(self, host: str, port: int, reason: str) -> None:
        self.crawler.stats.inc_value("rendering/guard_refused")
        key = (host, port)
        if key not in self._logged and len(self._logged) < _LOGGED_MAX:
            self._logged.add(key)
            logger.warning("render guard refused %s:%d: %s (further refusals of it are "
                           "counted in rendering/guard_refused)", host, port, reason)

    def process_request(self, request: Request) -> None:
        self._started[request] = time.monotonic()

    def process_exception(self, request: Request, exception: Exception) -> None:
        since = self._started.pop(request, None)
        text = str(exception)
        if since is None or "net::ERR_" not in text:
            return  # not Chromium's network error
        failure = _pick(self.proxy.recent_failures(since), request, _SOCKS_FAILED in text)
        if failure is not None:
            raise _error(failure) from exception


def _pick(failures: list[Outcome], request: Request, at_proxy: bool) -> Outcome | None:
    """The proxy's failure that most likely ended this navigation.

    Its own host first (a first hop the downloader's guard let through may
    resolve elsewhere by now, or its certificate fail); else, when Chromium
    says the proxy refused a connection, the last refusal: a redirect's hop.
    None when neither (the navigation's error then stays Chromium's).
    """
    host = urlsplit(request.url).hostname
    own = [f for f in failures if f.host == host]
    refused = [f for f in failures if f.kind == "refused"] if at_proxy else []
    for group in (own, refused):
        if group:
            return group[-1]
    return None


def _error(failure: Outcome) -> Exception:
    if failure.kind == "refused":
        return RenderRefused(f"refused private address: {failure.detail} (render guard)",
                             hint="Private networks are crawled only with "
                                  "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS (or "
                                  "CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS).")
    kinds: dict[str, Any] = {"dns": net.DNSLookupError, "timeout": net.TCPTimedOutError,
                             "connect": net.ConnectionRefusedError, "tls": SSL.Error}
    return kinds[failure.kind](failure.detail)
