"""Per-host politeness shared by every worker of a job: delay, concurrency, backoff.

Before each download the middleware reserves a start time for the request's
host (`host:port`): not before the host's previous reservation plus its
interval, nor before a `Retry-After` pause, and only while fewer than
`CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY` requests to it are in flight. The
interval is the largest of `CRAWLGRAPH_THROTTLE_MIN_DELAY`, the host's
robots.txt `Crawl-delay` and an AutoThrottle-like delay adapted to the
server's latency (`latency / CRAWLGRAPH_THROTTLE_TARGET_CONCURRENCY`,
smoothed, capped by `CRAWLGRAPH_THROTTLE_MAX_DELAY`). A `429` or `503` pauses
the host for its `Retry-After` (seconds or an HTTP date, capped by
`CRAWLGRAPH_THROTTLE_MAX_PAUSE`), or, without one, for an exponential backoff
with jitter.

The state lives in Redis under the job's keys (`crawlgraph:<job>:throttle:*`),
updated atomically by Lua scripts using Redis's clock, so four workers on one
job are together as polite as one (`crawler.middlewares.throttleredis`).
Without a job id or a Redis URL (``CRAWLGRAPH_REDIS_URL``; a quick local
`scrapy crawl`, unit tests) the
same state is kept in the process (`crawler.middlewares.throttlestate`).

A request whose host is not due for longer than
`CRAWLGRAPH_THROTTLE_DEFER_AFTER` seconds (default 1.0) does not wait in its
download slot (Scrapy counts a waiting request among `CONCURRENT_REQUESTS`, so
the requests of a few slow hosts would keep every other host waiting): it
goes back to the job's frontier with a not-before time
(`crawler.frontier.defer`), nothing reserved for it, and any worker fetches
it then; the deferred requests of one host come back one interval apart.
Stats: ``throttle/deferred``. Only requests the frontier handed out are
deferred (a job's crawler process, not robots.txt fetches); the others wait
as before. `CRAWLGRAPH_THROTTLE_DEFER = False` makes every request wait.

Other components reach it through signals (`crawler.middlewares.signals`): a
robots.txt `Crawl-delay` (`robots_parsed`) becomes the host's minimum delay,
and a detected block (`host_blocked`) doubles the host's delay.

On by default; `CRAWLGRAPH_THROTTLE_ENABLED = False` turns it off. It
replaces Scrapy's per-slot `DOWNLOAD_DELAY` and AutoThrottle (keep those off).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import uuid
from typing import Any, Self

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response

from crawler.frontier.defer import Defer, can_defer
from crawler.middlewares.retryafter import parse_retry_after
from crawler.middlewares.signals import host_blocked, robots_parsed
from crawler.middlewares.throttleredis import RedisThrottleState
from crawler.middlewares.throttlestate import LocalThrottleState, ThrottleState
from crawler.urls import host_key

logger = logging.getLogger(__name__)

META_KEY = "crawlgraph_throttle"


def may_speed_up(status: int) -> bool:
    """May an answer with this status lower its host's delay?

    A 200, and a 304 (a recrawl's "not modified": the server answered as fast as
    it serves the page); error pages and redirects are often fast without
    saying anything about the server's load, so, as in Scrapy's AutoThrottle,
    they never lower it.
    """
    return status in (200, 304)


class ThrottleMiddleware:
    """Downloader middleware applying the shared per-host politeness state."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.crawler = crawler
        self.min_delay = s.getfloat("CRAWLGRAPH_THROTTLE_MIN_DELAY", 0.0)
        self.max_delay = s.getfloat("CRAWLGRAPH_THROTTLE_MAX_DELAY", 60.0)
        self.max_concurrency = s.getint("CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY", 8)
        self.target = s.getfloat("CRAWLGRAPH_THROTTLE_TARGET_CONCURRENCY", 4.0)
        self.adaptive = s.getbool("CRAWLGRAPH_THROTTLE_ADAPTIVE", True)
        self.max_pause = s.getfloat("CRAWLGRAPH_THROTTLE_MAX_PAUSE", 300.0)
        self.backoff_base = s.getfloat("CRAWLGRAPH_THROTTLE_BACKOFF_BASE", 1.0)
        self.pause_statuses = {int(x) for x in s.getlist("CRAWLGRAPH_THROTTLE_PAUSE_STATUSES",
                                                         [429, 503])}
        # Start times are spaced exactly; a request's arrival at the server varies
        # by a few milliseconds (connection set-up), so a Crawl-delay gets a margin.
        self.slack = s.getfloat("CRAWLGRAPH_THROTTLE_SLACK", 0.05)
        self.lease = s.getfloat("DOWNLOAD_TIMEOUT", 180) + 30
        self.shared = s.getbool("CRAWLGRAPH_THROTTLE_SHARED", True)
        self.defer = s.getbool("CRAWLGRAPH_THROTTLE_DEFER", True)
        self.defer_after = s.getfloat("CRAWLGRAPH_THROTTLE_DEFER_AFTER", 1.0)
        self.redis_url = s.get("CRAWLGRAPH_REDIS_URL") or None
        self.state: ThrottleState = LocalThrottleState()
        self._worker = uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self._released: dict[str, asyncio.Event] = {}
        crawler.signals.connect(self.spider_opened, signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signals.spider_closed)
        crawler.signals.connect(self._robots_parsed, robots_parsed)
        crawler.signals.connect(self._host_blocked, host_blocked)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("CRAWLGRAPH_THROTTLE_ENABLED", True):
            raise NotConfigured("throttling is off")
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        job_id = getattr(spider, "job_id", None)
        if self.shared and job_id and self.redis_url:
            self.state = RedisThrottleState(self.redis_url, str(job_id))
            logger.info("throttle state shared through Redis for job %s", job_id)

    async def spider_closed(self, spider: Any) -> None:
        await self.state.close()

    # -- other components' signals -----------------------------------------------
    async def _robots_parsed(self, url: str, crawl_delay: float | None) -> None:
        """A host's robots.txt `Crawl-delay` becomes its minimum delay."""
        if crawl_delay:
            await self.state.set_field(host_key(url + "/"), "crawl_delay",
                                       min(crawl_delay, self.max_delay) + self.slack)

    async def _host_blocked(self, url: str) -> None:
        """A block was detected: double the host's delay (at least 1 s)."""
        key = host_key(url)
        current = (await self.state.get(key)).get("delay", 0.0)
        await self.state.set_field(key, "delay", min(max(current * 2.0, 1.0), self.max_delay))
        self.crawler.stats.inc_value("throttle/slowed_down")

    # -- downloader middleware hooks ------------------------------------------------
    async def process_request(self, request: Request) -> None:
        if META_KEY in request.meta:  # already holds a reservation (should not happen)
            return
        host = host_key(request.url)
        token = f"{self._worker}:{next(self._counter)}"
        # Only a request the frontier handed out can go back to it; the others
        # (robots.txt, fetched with engine.download_async) wait.
        deferrable = self.defer and can_defer(self.crawler, request)
        while True:
            if deferrable:
                verdict, wait = await self.state.acquire_or_defer(
                    host, self.min_delay, self.max_concurrency, token, self.lease,
                    self.defer_after)
                if verdict == "defer":
                    self.crawler.stats.inc_value("throttle/deferred")
                    raise Defer(wait, f"{host} is not due for {wait:.1f}s (politeness)")
                if verdict == "ok":
                    break
            else:
                wait = await self.state.acquire(host, self.min_delay, self.max_concurrency,
                                                token, self.lease)
                if wait >= 0:
                    break
            # At the host's concurrency limit: try again as soon as this worker
            # releases one of its requests to the host, or after a short poll
            # (the request in flight may be another worker's).
            released = self._released.setdefault(host, asyncio.Event())
            try:
                await asyncio.wait_for(released.wait(), 0.05 + random.random() * 0.05)
            except TimeoutError:
                pass
        if wait > 0:
            self.crawler.stats.inc_value("throttle/delayed")
            await asyncio.sleep(wait)
        request.meta[META_KEY] = (host, token)

    def _notify(self, host: str) -> None:
        event = self._released.pop(host, None)
        if event is not None:
            event.set()

    async def process_response(self, request: Request, response: Response) -> Response:
        held = request.meta.pop(META_KEY, None)
        if held is None:
            return response
        host, token = held
        # Releasing the reservation and updating the host's state is one round trip.
        if response.status in self.pause_statuses:
            # Without Retry-After (None), the state applies exponential backoff with jitter.
            seconds = parse_retry_after(response.headers.get(b"Retry-After"), self.max_pause)
            paused = await self.state.pause(host, seconds, self.backoff_base * (
                1 + random.random() * 0.25), self.max_pause, release=token)
            self.crawler.stats.inc_value(f"throttle/paused/{response.status}")
            logger.info("pausing %s for %.1fs after %s", host, paused, response.status)
        elif self.adaptive and "download_latency" in request.meta:
            await self.state.adapt(host, float(request.meta["download_latency"]), self.target,
                                   self.min_delay, self.max_delay, may_speed_up(response.status),
                                   release=token)
        else:
            await self.state.release(host, token)
        self._notify(host)
        return response

    async def process_exception(self, request: Request, exception: Exception) -> None:
        held = request.meta.pop(META_KEY, None)
        if held is not None:
            await self.state.release(*held)
            self._notify(held[0])
