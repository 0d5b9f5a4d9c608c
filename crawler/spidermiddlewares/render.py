"""`render_js`: which requests are rendered in Chromium (`crawler.rendering`).

- `always`: every request a kit spider yields (start requests included), and
  every frontier seed as it reaches the downloader, is marked for rendering;
- `auto`: a plainly fetched page that looks built by scripts (no links and no
  text, or no match for `render_selector`) is fetched again, rendered; its
  plain fetch yields nothing (no Page, and its callback's output is dropped).
  The second fetch is scheduled with the engine, not yielded, so that it is
  not one level deeper. Stat: `crawlgraph/render_retry`.

Chromium follows a rendered page's redirects itself, so no request is
scheduled per hop: its `Redirect` items (`pages.redirect_hops`) come with
the page's output here, as the pages middleware stores a plain fetch's
(counted under `crawlgraph/redirects`; not with `CRAWLGRAPH_PAGES_ENABLED = False`).

The spider installs the Playwright download handler for `always` and `auto`
(`rendering.configure`). On in `crawler.settings` for jobs that render; off
with `CRAWLGRAPH_RENDER_ENABLED = False` (then nothing is rendered).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response

from crawler import rendering
from crawler.sitemaps import SITEMAP_META
from crawler.spidermiddlewares import kit_spider
from crawler.spidermiddlewares.pages import redirect_hops


class RenderMiddleware:
    """Spider middleware marking requests for rendering, or fetching a page again rendered."""

    def __init__(self, crawler: Crawler, mode: str, selector: str | None) -> None:
        self.crawler = crawler
        self.mode = mode
        self.selector = selector
        settings = crawler.settings
        self.hops = settings.getbool("CRAWLGRAPH_PAGES_ENABLED", True)
        self.strip_params = settings.getbool("CRAWLGRAPH_STRIP_SESSION_PARAMS", True)
        if mode == "always":
            crawler.signals.connect(self._adopt, signals.request_reached_downloader)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        args = kit_spider(crawler, "CRAWLGRAPH_RENDER_ENABLED").args
        if args.render_js == "never":
            raise NotConfigured  # the job renders nothing: nothing to say in the log
        return cls(crawler, args.render_js, args.render_selector)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for out in start:
            yield self._mark(out)

    async def process_spider_output(self, response: Response,
                                    result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if rendering.needs_render(response, self.mode, self.selector):
            self.crawler.stats.inc_value("crawlgraph/render_retry")
            assert self.crawler.engine is not None
            self.crawler.engine.crawl(rendering.render_request(response.request))
            return
        if self.hops and not response.meta.get(SITEMAP_META):
            for hop in redirect_hops(response, strip_params=self.strip_params):
                self.crawler.stats.inc_value("crawlgraph/redirects")
                yield hop
        async for out in result:
            yield self._mark(out)

    def _mark(self, out: Any) -> Any:
        # A sitemap file is XML for the spider, never a page for Chromium.
        if (self.mode == "always" and isinstance(out, Request)
                and not out.meta.get(SITEMAP_META)):
            rendering.mark(out.meta)
        return out

    def _adopt(self, request: Request, spider: Spider) -> None:
        # A frontier seed has no callback; the kit's own requests are marked already.
        if request.callback is None:
            rendering.mark(request.meta)
