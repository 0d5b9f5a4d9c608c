"""Canonical request URLs: one URL, one request, one node of the link graph.

Every request a kit spider yields (its start requests included) gets the
canonical form of its URL (`crawler.urls.canonicalize`), so that the frontier's
seen-set, the scope and the stored pages all speak of the same URL however a
page spelt it. Stat: `crawlgraph/canonical/rewritten` (requests whose URL
changed).

On in `crawler.settings`; off with `CRAWLGRAPH_CANONICAL_ENABLED = False`.
"""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawler.spidermiddlewares import kit_spider
from crawler.urls import canonicalize


class CanonicalUrlMiddleware(BaseSpiderMiddleware):
    """Spider middleware giving every request its canonical URL."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        kit_spider(crawler, "CRAWLGRAPH_CANONICAL_ENABLED")
        return cls(crawler)

    def get_processed_request(self, request: Request,
                              response: Response | None) -> Request | None:
        url = canonicalize(request.url)
        if url == request.url:
            return request
        self.crawler.stats.inc_value("crawlgraph/canonical/rewritten")
        return request.replace(url=url)
