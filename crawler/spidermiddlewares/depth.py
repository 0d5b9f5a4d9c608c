"""`max_depth`: requests more links away from a start URL than the job allows are dropped.

A request yielded by a callback is one level deeper than the response it came
from (start requests and the frontier's seeds are level 0); with `max_depth`
0 only the start pages are fetched. Scrapy's DepthMiddleware still sets
`depth` in the request meta and lowers deep requests' priority
(`DEPTH_PRIORITY`); its `DEPTH_LIMIT` cannot say "start pages only". Stat:
`crawlgraph/too_deep` (requests dropped).

On in `crawler.settings` for jobs with `max_depth`; off with
`CRAWLGRAPH_DEPTH_ENABLED = False`.
"""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawler.spidermiddlewares import kit_spider


class MaxDepthMiddleware(BaseSpiderMiddleware):
    """Spider middleware dropping requests deeper than `max_depth`."""

    def __init__(self, crawler: Crawler, max_depth: int) -> None:
        super().__init__(crawler)
        self.max_depth = max_depth

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        max_depth = kit_spider(crawler, "CRAWLGRAPH_DEPTH_ENABLED").args.max_depth
        if max_depth is None:
            raise NotConfigured  # no limit: nothing to say in the log
        return cls(crawler, max_depth)

    def get_processed_request(self, request: Request,
                              response: Response | None) -> Request | None:
        if response is None or response.meta.get("depth", 0) + 1 <= self.max_depth:
            return request
        self.crawler.stats.inc_value("crawlgraph/too_deep")
        return None
