"""The crawl's scope: requests leaving it are dropped (links to them are still stored).

A URL is in scope when it is http(s), on a start host *and port* (or, when the
job gives `allowed_domains`, on one of those: `example.org` takes its
subdomains and any port, `host:port` exactly that), matches one of the
`include` patterns if there are any, and none of the `exclude` patterns.
Start requests define the scope and pass. Unlike Scrapy's OffsiteMiddleware,
the port counts: two servers on one host are two sites. Stat:
`crawlgraph/offsite` (requests dropped).

On in `crawler.settings`; off with `CRAWLGRAPH_SCOPE_ENABLED = False`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Self

from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawler.spidermiddlewares import kit_spider
from crawler.spiders.args import CrawlParams
from crawler.urls import host_key


class Scope:
    """The URLs a crawl may fetch; `url in scope` tells (URLs canonical)."""

    def __init__(self, start_urls: Iterable[str], allowed_domains: Iterable[str] = (),
                 include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.hosts = {host_key(u) for u in start_urls}
        self.domains = [d.lower().rstrip(".") for d in allowed_domains]
        self.include = [re.compile(p) for p in include]
        self.exclude = [re.compile(p) for p in exclude]

    @classmethod
    def of(cls, params: CrawlParams) -> Scope:
        """The scope a job's parameters describe."""
        return cls(params.start_urls, params.allowed_domains, params.include, params.exclude)

    def __contains__(self, url: str) -> bool:
        if not url.startswith(("http://", "https://")):
            return False
        key = host_key(url)
        if self.domains:
            host = key.rsplit(":", 1)[0]
            if not any(host == d or host.endswith("." + d) or key == d for d in self.domains):
                return False
        elif key not in self.hosts:
            return False
        if self.include and not any(p.search(url) for p in self.include):
            return False
        return not any(p.search(url) for p in self.exclude)


class ScopeMiddleware(BaseSpiderMiddleware):
    """Spider middleware dropping the requests of a callback that leave the scope."""

    def __init__(self, crawler: Crawler, scope: Scope) -> None:
        super().__init__(crawler)
        self.scope = scope

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, Scope.of(kit_spider(crawler, "CRAWLGRAPH_SCOPE_ENABLED").args))

    def get_processed_request(self, request: Request,
                              response: Response | None) -> Request | None:
        if response is None or request.url in self.scope:
            return request
        self.crawler.stats.inc_value("crawlgraph/offsite")
        return None
