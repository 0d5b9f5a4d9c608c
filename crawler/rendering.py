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
`CRAWLGRAPH_RENDER_CONTEXT_PAGES` rendered pages
(`crawler.rendercontexts.RenderContextMiddleware` closes the old one once its
last page is done), and images, media and fonts never fetched.

Everything Chromium connects to goes through the render guard
(`crawler.renderguard`): a proxy of the crawler's that resolves each name as
the crawler does (`CRAWLGRAPH_RESOLVE`) and refuses private addresses as the
downloader's address guard does, for navigations, redirects and every
subresource alike. A rendered page's redirects
(`crawler.spidermiddlewares.pages.redirect_hops`) are stored as Redirect
items, as a plain fetch's are.
"""

from __future__ import annotations

from typing import Any

from scrapy.http import Request, Response, TextResponse
from scrapy.settings import Settings

from crawler import renderguard

HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
_SKIPPED_RESOURCES = {"image", "media", "font"}


def configure(settings: Settings, render_js: str) -> None:
    """Install Playwright's download handler and options when this spider may render."""
    if render_js == "never":
        return
    handlers = dict(settings.getdict("DOWNLOAD_HANDLERS"))
    handlers.update({"http": HANDLER, "https": HANDLER})
    settings.set("DOWNLOAD_HANDLERS", handlers, priority="spider")
    middlewares = dict(settings.getdict("DOWNLOADER_MIDDLEWARES"))
    middlewares.setdefault("crawler.rendercontexts.RenderContextMiddleware", 960)
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
    renderguard.install(settings)  # last: its switches join whatever launch options are set


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
    """PLAYWRIGHT_ABORT_REQUEST: skip heavy subresources (images, media, fonts)."""
    return request.resource_type in _SKIPPED_RESOURCES
