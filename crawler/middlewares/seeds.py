"""Frontier seeds get the spider's errback before any downloader middleware can refuse them.

The job API seeds a job's start URLs into the frontier as plain requests: no
callback (Scrapy calls the spider's `parse`) and no errback. A downloader
middleware that refuses such a request — robots.txt that cannot be fetched
(`crawler.failures.RobotsUnreachable`) — would drop it with nothing stored,
and a crawl of a dead host would "finish" with no page and no error. This
middleware runs first and gives every request that has neither the spider's
`on_failure`, so the failure is a page that says its cause.

On in `crawler.settings` (`DOWNLOADER_MIDDLEWARES`, 50: before the address
guard); off for spiders without `on_failure` (spiders outside the kit), or
with `CRAWLGRAPH_SEEDS_ENABLED = False`.
"""

from __future__ import annotations

from typing import Any, Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request


class SeedErrbackMiddleware:
    """Downloader middleware giving requests without callback and errback the spider's errback."""

    def __init__(self, errback: Any) -> None:
        self.errback = errback

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("CRAWLGRAPH_SEEDS_ENABLED", True):
            raise NotConfigured("CRAWLGRAPH_SEEDS_ENABLED is off")
        errback = getattr(crawler.spider, "on_failure", None)
        if errback is None:
            raise NotConfigured("the spider has no on_failure errback")
        return cls(errback)

    def process_request(self, request: Request) -> None:
        if request.callback is None and request.errback is None:
            request.errback = self.errback
