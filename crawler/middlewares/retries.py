"""Retries with exponential backoff and jitter.

Scrapy's RetryMiddleware decides what to retry (timeouts, connection errors,
`RETRY_HTTP_CODES`) and how often (`RETRY_TIMES`), but sends the retry at
once. This subclass gives the n-th retry of a request a not-before time of
`CRAWLGRAPH_RETRY_BACKOFF_BASE * 2**(n-1)` seconds (capped by
`CRAWLGRAPH_RETRY_BACKOFF_MAX`), times a random factor in [0.5, 1.5) so that
retries from many workers do not arrive together, and holds the retried
request in `process_request` until then. Use it in place of Scrapy's
RetryMiddleware (same priority); `RETRY_ENABLED = False` turns it off.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware

NOT_BEFORE = "crawlgraph_retry_not_before"


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number `attempt` (1-based): exponential, capped, jittered."""
    return min(cap, base * 2 ** max(attempt - 1, 0)) * (0.5 + rng.random())


class RetryBackoffMiddleware(RetryMiddleware):
    """RetryMiddleware whose retries wait an exponential, jittered backoff."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        mw = super().from_crawler(crawler)
        mw.base = crawler.settings.getfloat("CRAWLGRAPH_RETRY_BACKOFF_BASE", 0.5)
        mw.cap = crawler.settings.getfloat("CRAWLGRAPH_RETRY_BACKOFF_MAX", 60.0)
        mw.rng = random.Random()
        return mw

    def _retry(self, request: Request, reason: str | Exception | type[Exception]) -> Request | None:
        retry = super()._retry(request, reason)
        if retry is not None:
            attempt = retry.meta.get("retry_times", 1)
            retry.meta[NOT_BEFORE] = time.time() + backoff_seconds(attempt, self.base, self.cap,
                                                                   self.rng)
        return retry

    async def process_request(self, request: Request) -> None:
        not_before = request.meta.get(NOT_BEFORE)
        if not_before:
            wait = not_before - time.time()
            if wait > 0:
                self.crawler.stats.inc_value("retry/backoff_wait_count")
                await asyncio.sleep(wait)
