"""JavaScript rendering with scrapy-playwright and the system's Chromium.

A spider's `render_js` argument decides:

- `never`: plain HTTP only (the Playwright handler is not even installed);
- `always`: every request is rendered in Chromium;
- `auto`: pages are fetched plainly, and one is fetched again through
  Chromium when its static HTML has no links and no body text, or lacks the
  spider's `render_selector`.

`configure` installs the Playwright download handler for a spider that may
render (only then: the handler starts a Playwright driver); requests not
marked with `mark` still go through Scrapy's HTTP handler. The browser is
Debian's Chromium (`CRAWLGRAPH_CHROMIUM`, default `/usr/bin/chromium`),
launched with the options that work without a sandbox or GPU; Playwright
never downloads a browser of its own. Memory stays flat: one browser, at most
`PLAYWRIGHT_MAX_CONTEXTS` contexts and `PLAYWRIGHT_MAX_PAGES_PER_CONTEXT`
pages, every page closed after use, a fresh browser context every
`CRAWLGRAPH_RENDER_CONTEXT_PAGES` rendered pages (`RenderContextMiddleware`
closes the old one once its last page is done), and images, media and fonts
(and any subresource on a refused private address) never fetched.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response, TextResponse
from scrapy.settings import Settings

from crawler.middlewares.addressguard import address_reason, private_networks_allowed
from crawler.scrapyinternals import download_handler

HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
_SKIPPED_RESOURCES = {"image", "media", "font"}
_ALLOW_PRIVATE = False


def configure(settings: Settings, render_js: str) -> None:
    """Install Playwright's download handler and options when this spider may render."""
    global _ALLOW_PRIVATE
    if render_js == "never":
        return
    _ALLOW_PRIVATE = private_networks_allowed(settings.get("CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS"))
    handlers = dict(settings.getdict("DOWNLOAD_HANDLERS"))
    handlers.update({"http": HANDLER, "https": HANDLER})
    settings.set("DOWNLOAD_HANDLERS", handlers, priority="spider")
    middlewares = dict(settings.getdict("DOWNLOADER_MIDDLEWARES"))
    middlewares.setdefault("crawler.rendering.RenderContextMiddleware", 960)
    settings.set("DOWNLOADER_MIDDLEWARES", middlewares, priority="spider")
    executable = settings.get("CRAWLGRAPH_CHROMIUM") or CHROMIUM
    defaults = {
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": executable, "args": CHROMIUM_ARGS,
                                      "headless": True},
        # The current context plus older ones finishing their last pages.
        "PLAYWRIGHT_MAX_CONTEXTS": 3,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 4,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": 30_000,
        "PLAYWRIGHT_ABORT_REQUEST": "crawler.rendering.abort_request",
    }
    for name, value in defaults.items():
        # A project or command-line value wins over these defaults.
        if settings.getpriority(name) in (None, 0):
            settings.set(name, value, priority="spider")


def mark(meta: dict[str, Any]) -> dict[str, Any]:
    """Mark a request's meta for rendering in Chromium."""
    meta["playwright"] = True
    return meta


def is_marked(meta: dict[str, Any]) -> bool:
    return bool(meta.get("playwright"))


# Set by the downloader for one download; not to be carried into another.
_DOWNLOAD_META = ("download_latency", "download_slot", "download_timeout", "retry_times",
                  "crawlgraph_retry_not_before")


def render_request(request: Request) -> Request:
    """The same request again, rendered this time (not filtered as a duplicate).

    Schedule it with `crawler.engine.crawl()`, not as callback output: the
    depth middleware would count the second fetch of a page as a level.
    """
    meta = {k: v for k, v in request.meta.items() if k not in _DOWNLOAD_META}
    return request.replace(meta=mark(meta), dont_filter=True)


def needs_render(response: Response, render_js: str, selector: str | None = None) -> bool:
    """`auto` mode: should this plainly fetched page be rendered?"""
    if render_js != "auto" or is_marked(response.meta):
        return False
    if not isinstance(response, TextResponse):
        return False
    if b"html" not in (response.headers.get(b"Content-Type") or b"text/html").lower():
        return False
    if response.status >= 300:
        return False
    if selector:
        return not response.css(selector)
    has_links = bool(response.xpath("//a[@href] | //area[@href]"))
    text = "".join(response.xpath(
        "//body//text()[not(ancestor::script) and not(ancestor::style)"
        " and not(ancestor::noscript)]").getall())
    return not has_links and not text.strip()


def abort_request(request: Any) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST: skip heavy subresources and private-address targets."""
    if request.resource_type in _SKIPPED_RESOURCES:
        return True
    if _ALLOW_PRIVATE:
        return False
    host = urlsplit(request.url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return address_reason(ipaddress.ip_address(host.strip("[]"))) is not None
    except ValueError:
        return False  # a name: the navigation itself went through the guard


class RenderContextMiddleware:
    """Downloader middleware giving rendered requests a fresh browser context now and then.

    A long-lived browser context accumulates memory (history, caches, script
    heaps of closed pages); after `CRAWLGRAPH_RENDER_CONTEXT_PAGES` rendered
    pages new requests go to a new context, and the old one is closed as soon
    as none of its pages is open. Installed by `configure` for rendering spiders.
    """

    def __init__(self, crawler: Crawler, pages_per_context: int) -> None:
        self.crawler = crawler
        self.pages_per_context = pages_per_context
        self.generation = 0
        self.rendered = 0
        # Requests sent to each context and not answered yet: a context is closed
        # only when none is pending (a page opening in a closing context hangs).
        self.pending: dict[str, int] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RenderContextMiddleware:
        pages = crawler.settings.getint("CRAWLGRAPH_RENDER_CONTEXT_PAGES", 100)
        if pages <= 0:
            raise NotConfigured("browser contexts are not recycled")
        return cls(crawler, pages)

    @property
    def context_name(self) -> str:
        return f"crawlgraph-{self.generation}"

    def process_request(self, request: Request) -> None:
        if is_marked(request.meta):
            name = self.context_name
            request.meta["playwright_context"] = name
            request.meta["crawlgraph_render_context"] = name
            self.pending[name] = self.pending.get(name, 0) + 1

    def _done(self, request: Request) -> bool:
        name = request.meta.pop("crawlgraph_render_context", None)
        if name is None:
            return False
        self.pending[name] -= 1
        if not self.pending[name]:
            del self.pending[name]
        return True

    async def process_exception(self, request: Request, exception: Exception) -> None:
        if self._done(request):
            await self._close_idle_contexts()

    async def process_response(self, request: Request, response: Response) -> Response:
        if not self._done(request):
            return response
        self.rendered += 1
        if self.rendered % self.pages_per_context == 0:
            self.generation += 1
            self.crawler.stats.inc_value("rendering/context_recycled")
        await self._close_idle_contexts()
        return response

    async def _close_idle_contexts(self) -> None:
        for handler in self._handlers():
            for name, wrapper in list(handler.context_wrappers.items()):
                if name != self.context_name and name.startswith("crawlgraph-") \
                        and not self.pending.get(name) and not wrapper.context.pages:
                    await wrapper.context.close()

    def _handlers(self) -> list[Any]:
        """The Playwright handlers (one instance per scheme, each with its contexts).

        Called from the download hooks only, so the crawl (and its engine) runs.
        """
        found = []
        for scheme in ("http", "https"):
            handler = download_handler(self.crawler, scheme)
            if hasattr(handler, "context_wrappers") and handler not in found:
                found.append(handler)
        return found
