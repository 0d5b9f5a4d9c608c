"""Fresh browser contexts now and then: `RenderContextMiddleware`, installed by `rendering`.

A long-lived browser context accumulates memory (history, caches, script
heaps of closed pages); after `CRAWLGRAPH_RENDER_CONTEXT_PAGES` [100]
rendered pages, new requests go to a new context, and the old one is closed
as soon as none of its pages is open; 0 or less keeps one context. Stat:
`rendering/context_recycled`.
"""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response

from crawler.rendering import is_marked
from crawler.scrapyinternals import download_handler


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
