"""Deferral: a downloader middleware sends a request back to the job's frontier for later.

A middleware that must not fetch a request yet (its host's robots.txt is
down, its host must not be asked before some time) raises `Defer` from
`process_request`, instead of sleeping there with a downloader slot held:

    from crawler.frontier.defer import Defer, can_defer

    async def process_request(self, request):
        if too_early and can_defer(self.crawler, request):
            raise Defer(seconds, "robots.txt of example.org answered 503")

`DeferMiddleware` (first in `DOWNLOADER_MIDDLEWARES`, so that its
`process_exception` runs after every other middleware's has seen the
exception and undone what it did for the request) hands the request to the
scheduler, which swaps its lease in the job's shared frontier for a deferral
in one atomic step (`crawler.frontier.queue.JobFrontier.defer`): the request
keeps its place in the queue and its payload, and any worker of the job
leases it again once `seconds` have passed (Redis server time). Nothing is
acknowledged, no errback runs, no item is made; if the worker dies before the
swap, its lease expires and the request is fetched again as usual.

Only `process_request` may raise it (an exception of `process_response`
never reaches `process_exception`). The request handed back passes Scrapy's
`request_scheduled` signal once more, so a redirect hop it carries is
stored again (the storage's upsert keeps one row).

`can_defer(crawler)` is true while the Redis scheduler runs (a job's crawler
process); without it (a plain `scrapy crawl`, Scrapy's in-memory scheduler) a
`Defer` is an ordinary `IgnoreRequest` that reaches the request's errback,
so a middleware should check first and decide what to do otherwise. A
request the frontier did not hand out (one fetched with
``engine.download_async``, such as robots.txt) is not deferred either: the
same `IgnoreRequest`; `can_defer(crawler, request)` says whether this
request can be.
`job_frontier(crawler)` is the job's `JobFrontier` then: state the job's
workers share about a wait (a host's robots.txt outage) belongs in its keys.

Stats: ``frontier/deferrals`` (requests this worker deferred), the frontier
worker's ``frontier/deferred_total`` (deferrals Redis took) and the job-wide
``frontier/deferred`` gauge (requests waiting). On in `crawler.settings`,
at 40: before every other downloader middleware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest

if TYPE_CHECKING:
    from crawler.frontier.queue import JobFrontier

_ATTR = "_crawlgraph_deferrer"


class Defer(IgnoreRequest):
    """Fetch this request later: not before `delay` seconds from now, for `reason`."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(f"deferred for {delay:.1f}s: {reason}")
        self.delay = max(0.0, float(delay))
        self.reason = reason


class Deferrer(Protocol):
    """What takes deferred requests: the Redis scheduler (`crawler.frontier.scheduler`)."""

    @property
    def job_frontier(self) -> JobFrontier: ...

    def holds(self, request: Request) -> bool: ...

    def defer(self, request: Request, delay: float, reason: str) -> bool: ...


def register(crawler: Crawler, deferrer: Deferrer | None) -> None:
    """Make `deferrer` take this crawler's deferred requests (None: nobody takes them)."""
    setattr(crawler, _ATTR, deferrer)


def can_defer(crawler: Crawler, request: Request | None = None) -> bool:
    """Whether a `Defer` raised now (for `request`) becomes a deferral in the job's frontier.

    Without `request`: whether this crawler defers at all; with it: whether the
    frontier handed this request out, so that it has a lease to defer.
    """
    deferrer: Deferrer | None = getattr(crawler, _ATTR, None)
    return deferrer is not None and (request is None or deferrer.holds(request))


def job_frontier(crawler: Crawler) -> JobFrontier | None:
    """The frontier deferred requests wait in, for job-wide state kept beside them; or None."""
    deferrer: Deferrer | None = getattr(crawler, _ATTR, None)
    return None if deferrer is None else deferrer.job_frontier


class DeferMiddleware:
    """Downloader middleware turning a `Defer` into a frontier deferral; see the module."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if not isinstance(exception, Defer):
            return None
        deferrer: Deferrer | None = getattr(self.crawler, _ATTR, None)
        if deferrer is None or not deferrer.defer(request, exception.delay, exception.reason):
            return None  # an IgnoreRequest like any other
        self.crawler.stats.inc_value("frontier/deferrals")
        # Scrapy hands a returned request to the scheduler, which knows it as
        # deferred and queues nothing: the request leaves this worker with no
        # errback and no download.
        return request
