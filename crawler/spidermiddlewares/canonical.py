"""Canonical request URLs: one URL, one request, one node of the link graph.

Every request a kit spider yields (its start requests included) gets the
canonical form of its URL (`crawler.urls.canonicalize`), so that the frontier's
seen-set, the scope and the stored pages all speak of the same URL however a
page spelt it. Session ids and tracking parameters (`jsessionid`, `phpsessid`,
`utm_*`, `gclid`, ...: `crawler.urls.SESSION_PARAMS`) are removed unless
``CRAWLGRAPH_STRIP_SESSION_PARAMS`` is False; then requests keep them, and
so do the stored pages, links, hops and canonical URLs (the pages middleware
reads the same setting; the links a page yields keep them until then:
`crawler.spiders.links.extract_links`).
Stat: `crawlgraph/canonical/rewritten` (requests whose URL changed).

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

    def __init__(self, crawler: Crawler, strip_params: bool = True) -> None:
        super().__init__(crawler)
        self.strip_params = strip_params

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        kit_spider(crawler, "CRAWLGRAPH_CANONICAL_ENABLED")
        return cls(crawler, crawler.settings.getbool("CRAWLGRAPH_STRIP_SESSION_PARAMS", True))

    def get_processed_request(self, request: Request,
                              response: Response | None) -> Request | None:
        url = canonicalize(request.url, strip_params=self.strip_params)
        if url == request.url:
            return request
        self.crawler.stats.inc_value("crawlgraph/canonical/rewritten")
        return request.replace(url=url)
