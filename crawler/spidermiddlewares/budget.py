"""`max_pages`: the page budget of a crawler process.

Counts the `Page` items of responses passing by (the pages middleware puts
one first in each response's output; a page fetched again for rendering
yields none the first time). Once `max_pages` are counted, the requests of
that response and everything of later responses are dropped, and the spider
closes with the reason `max_pages`. A failed download's Page (the spider's
errback) does not pass spider middlewares and does not count. The job API
gives each worker of a job its share of the job's budget. Stat:
`crawlgraph/over_budget` (requests dropped).

On in `crawler.settings` for jobs with `max_pages`; off with
`CRAWLGRAPH_BUDGET_ENABLED = False`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Self

from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.http import Request, Response

from crawler.items import Page
from crawler.spidermiddlewares import kit_spider


class PageBudgetMiddleware:
    """Spider middleware closing the spider after `max_pages` pages."""

    def __init__(self, crawler: Crawler, max_pages: int) -> None:
        self.crawler = crawler
        self.max_pages = max_pages
        self.pages = 0
        self._closing = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        max_pages = kit_spider(crawler, "CRAWLGRAPH_BUDGET_ENABLED").args.max_pages
        if max_pages is None:
            raise NotConfigured  # no budget: nothing to say in the log
        return cls(crawler, max_pages)

    async def process_spider_output(self, response: Response,
                                    result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if self._spent():
            return  # the spider is closing: this response is not a page
        async for out in result:
            if isinstance(out, Page):
                self.pages += 1
            elif isinstance(out, Request) and self._spent():
                self.crawler.stats.inc_value("crawlgraph/over_budget")
                continue
            yield out
        if self._spent() and not self._closing:
            self._closing = True
            raise CloseSpider("max_pages")

    def _spent(self) -> bool:
        return self.pages >= self.max_pages
