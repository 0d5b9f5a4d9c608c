"""Page and Link items: every response is a stored page, every hyperlink a stored link.

Before a callback's own output, the output of every response of a kit spider
starts with its `Page` item (status, URL asked for and final URL after
redirects, title, size, hash, latency, depth, whether it was rendered) and
one `Link` item per target of its `<a href>` / `<area href>`
(`crawler.spiders.links`), in scope or not, followed or not.

A failed download has no response to pass here: the spider's errback
`CrawlgraphSpider.on_failure` stores its Page. This middleware gives that
errback to every request without one, those of the spider's start and
callbacks, and the frontier's seeds (which reach the downloader with neither
callback nor errback). Stats: `crawlgraph/pages` and `crawlgraph/links`
(items made here; a failed download's Page counts under
`crawlgraph/error/<exception>`).

On in `crawler.settings`; off with `CRAWLGRAPH_PAGES_ENABLED = False`;
`CRAWLGRAPH_PAGES_LINKS = False` stores pages without their links.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response

from crawler import rendering
from crawler.items import Link, Page
from crawler.spidermiddlewares import kit_spider
from crawler.spiders.links import extract_links, is_html
from crawler.urls import canonicalize


def response_page(response: Response) -> Page:
    """The Page item of a response."""
    first = (response.meta.get("redirect_urls") or [response.url])[0]
    ctype = response.headers.get(b"Content-Type")
    title = None
    if is_html(response):
        title = response.css("title::text").get()
        title = " ".join(title.split()) if title else None
    latency = response.meta.get("download_latency")
    return Page(
        url=canonicalize(first), final_url=canonicalize(response.url),
        status=response.status, fetched_at=datetime.now(UTC),
        content_type=ctype.decode("latin-1") if ctype else None, title=title,
        depth=response.meta.get("depth", 0), size=len(response.body),
        content_hash=hashlib.sha256(response.body).hexdigest(),
        elapsed_ms=int(latency * 1000) if latency is not None else None,
        rendered=rendering.is_marked(response.meta))


class PagesMiddleware:
    """Spider middleware putting a response's Page and Link items before its callback's output."""

    def __init__(self, crawler: Crawler, errback: Callable[..., Any], links: bool) -> None:
        self.crawler = crawler
        self.errback = errback
        self.links = links
        crawler.signals.connect(self._adopt, signals.request_reached_downloader)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        spider = kit_spider(crawler, "CRAWLGRAPH_PAGES_ENABLED")
        return cls(crawler, spider.on_failure,
                   crawler.settings.getbool("CRAWLGRAPH_PAGES_LINKS", True))

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for out in start:
            yield self._with_errback(out)

    async def process_spider_output(self, response: Response,
                                    result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        stats = self.crawler.stats
        stats.inc_value("crawlgraph/pages")
        yield response_page(response)
        if self.links:
            source = canonicalize(response.url)
            links = extract_links(response)
            stats.inc_value("crawlgraph/links", len(links))
            for link in links:
                yield Link(source_url=source, target_url=link.url, anchor_text=link.text,
                           nofollow=link.nofollow, count=link.count)
        async for out in result:
            yield self._with_errback(out)

    def _with_errback(self, out: Any) -> Any:
        if isinstance(out, Request) and out.errback is None:
            out.errback = self.errback
        return out

    def _adopt(self, request: Request, spider: Spider) -> None:
        # A frontier seed: Scrapy calls the spider's `parse` for it; give it the errback.
        if request.callback is None and request.errback is None:
            request.errback = self.errback
