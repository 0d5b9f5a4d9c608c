"""The Scrapy scheduler on the shared Redis frontier: leased, at-least-once delivery.

Switch it on with ``SCHEDULER = "crawler.frontier.scheduler.RedisScheduler"``
(on in `crawler.settings`). It serves the job named by the spider argument
``job_id`` (or ``CRAWLGRAPH_JOB_ID``); without one it hands over to Scrapy's
in-memory scheduler, so a spider still runs on its own. Settings:
``CRAWLGRAPH_REDIS_URL``, ``CRAWLGRAPH_LEASE_SECONDS``,
``CRAWLGRAPH_PREFETCH``, ``CRAWLGRAPH_POLL_SECONDS``,
``CRAWLGRAPH_RETRY_MAX_SECONDS``.

How a request travels:

1. `enqueue_request` fingerprints and serializes the request and puts it in the
   outbox of `crawler.frontier.worker.FrontierWorker`, whose background task
   pushes it to Redis, where the seen-set check and the queueing are one
   atomic step.
2. The same task leases requests ahead (``PREFETCH``), so `next_request`
   answers at once, with no Redis round trip and no idle wait, and wakes the
   engine as soon as new requests arrive. Leases are renewed every third of
   ``LEASE_SECONDS`` while this process holds them.
3. A handed-out request is done when the engine has finished with it and, if
   `crawler.pipelines.StoragePipeline` is on, every item of its response is
   committed (`crawler.frontier.acks`). Done leases are acknowledged after
   every request enqueued before them has been pushed, so nothing a response
   led to is lost.
4. A worker that dies leaves its leases to expire; any live worker requeues
   them. A worker that stops cleanly gives back the leases it did not use.
5. A request a downloader middleware defers (`crawler.frontier.defer`) is not
   acknowledged: `defer` swaps its lease for a not-before time in Redis, and
   the request Scrapy hands back (`enqueue_request`) is not queued again.

Redis unreachable: the task backs off and retries, keeping the outbox and the
acknowledgements in memory; the crawl goes on with what is leased. While any
request of the job is queued or leased by anyone, `has_pending_requests()`
stays true, so no worker quits while work may still come back. A paused job
(`JobFrontier.pause()`) stops handing out requests and its workers close with
reason ``paused`` once their in-flight requests are done. An ended job (its
frontier cleared when it finished or was cancelled) hands out nothing and
takes no push: a worker that starts late, or still runs then, fetches nothing
more and closes with reason ``job_ended`` (`crawler.frontier.ENDED_REASON`).
Both reasons are given from the `spider_idle` signal, so the engine closes
the spider once it runs and is idle, never while it is still opening.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any
from weakref import WeakSet

import redis.asyncio
from scrapy import Request, Spider, signals
from scrapy.core.scheduler import BaseScheduler, Scheduler
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_from_coro

from crawler.frontier import defer
from crawler.frontier.errors import FrontierError
from crawler.frontier.queue import JobFrontier
from crawler.frontier.serialize import member_of, request_from_bytes, request_to_bytes
from crawler.frontier.worker import FrontierWorker
from crawler.pipelines.storage import StoragePipeline
from crawler.redisclient import MAX_CONNECTIONS, client_for
from crawler.scrapyinternals import requests_in_progress, wake_engine

logger = logging.getLogger(__name__)
# Members this worker has pushed; skipping them saves Redis round trips for the
# many links to pages already known. Cleared when it grows past this size.
LOCAL_SEEN_MAX = 1_000_000


class RedisScheduler(BaseScheduler):
    """Schedules a job's requests through its Redis frontier; see the module docstring."""

    def __init__(
        self,
        crawler: Any,
        redis_url: str,
        job_id: str,
        *,
        lease_seconds: float = 60.0,
        prefetch: int = 16,
        poll_seconds: float = 0.1,
        retry_max_seconds: float = 10.0,
    ) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.redis_url = redis_url
        self.job_id = job_id
        self.lease_ms = int(lease_seconds * 1000)
        self.prefetch = max(1, prefetch)
        self.poll_seconds = poll_seconds
        self.retry_max_seconds = retry_max_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.spider: Spider | None = None
        self._fingerprinter = crawler.request_fingerprinter
        self._local_seen: set[bytes] = set()
        # Deferred requests Scrapy is about to hand back to `enqueue_request`.
        self._deferred: WeakSet[Request] = WeakSet()
        self._client: redis.asyncio.Redis | None = None
        self._frontier: FrontierWorker | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> BaseScheduler:
        settings = crawler.settings
        job_id = getattr(crawler.spider, "job_id", None) or settings.get("CRAWLGRAPH_JOB_ID")
        if not job_id:
            logger.info("frontier: no job_id, using Scrapy's in-memory scheduler")
            return Scheduler.from_crawler(crawler)
        url = settings.get("CRAWLGRAPH_REDIS_URL")
        if not url:
            raise FrontierError(
                "The Redis frontier needs CRAWLGRAPH_REDIS_URL or REDIS_URL.",
                hint="Run `crawlgraph up`, or set REDIS_URL.",
            )
        return cls(
            crawler,
            url,
            str(job_id),
            lease_seconds=settings.getfloat("CRAWLGRAPH_LEASE_SECONDS", 60.0),
            prefetch=settings.getint("CRAWLGRAPH_PREFETCH")
            or settings.getint("CONCURRENT_REQUESTS", 16),
            poll_seconds=settings.getfloat("CRAWLGRAPH_POLL_SECONDS", 0.1),
            retry_max_seconds=settings.getfloat("CRAWLGRAPH_RETRY_MAX_SECONDS", 10.0),
        )

    def open(self, spider: Spider) -> None:
        self.spider = spider
        self._client = client_for(self.redis_url, max_connections=max(
            MAX_CONNECTIONS, self.crawler.settings.getint("CONCURRENT_REQUESTS", 16)))
        self._frontier = FrontierWorker(
            JobFrontier(self._client, self.job_id),
            self.stats,
            worker_id=self.worker,
            lease_ms=self.lease_ms,
            prefetch=self.prefetch,
            poll_seconds=self.poll_seconds,
            retry_max_seconds=self.retry_max_seconds,
            decode=lambda payload: request_from_bytes(payload, spider),
            in_progress=lambda: requests_in_progress(self.crawler),
            wake_engine=lambda: wake_engine(self.crawler),
        )
        self._frontier.start()
        defer.register(self.crawler, self)
        self.crawler.signals.connect(self._spider_idle, signal=signals.spider_idle)
        storage = StoragePipeline.for_crawler(self.crawler)
        if storage is not None:
            self._frontier.acks.watch_commits(storage)
        logger.info("frontier: worker %s on job %s", self.worker, self.job_id)

    def close(self, reason: str) -> Any:
        return deferred_from_coro(self._close(reason))

    async def _close(self, reason: str) -> None:
        defer.register(self.crawler, None)
        await self._frontier.close()
        await self._client.aclose()
        logger.info("frontier: worker %s closed (%s)", self.worker, reason)

    def has_pending_requests(self) -> bool:
        return self._frontier.has_pending()

    def _spider_idle(self) -> None:
        """Close a spider whose job paused or ended with that reason, not as finished."""
        reason = self._frontier.stop_reason
        if reason is not None:
            raise CloseSpider(reason)

    @property
    def job_frontier(self) -> JobFrontier:
        return self._frontier.frontier

    def holds(self, request: Request) -> bool:
        """Whether `request` is one this worker handed out (`crawler.frontier.defer`)."""
        return self._frontier.holds(request)

    def defer(self, request: Request, delay: float, reason: str) -> bool:
        """Fetch a request this worker handed out later (`crawler.frontier.defer`)."""
        if not self._frontier.defer(request, int(delay * 1000)):
            return False
        logger.debug("frontier: deferred %s for %.1fs: %s", request.url, delay, reason)
        self._deferred.add(request)
        return True

    def enqueue_request(self, request: Request) -> bool:
        if request in self._deferred:  # handed back by DeferMiddleware: it waits in Redis
            self._deferred.discard(request)
            return True
        filtered = not request.dont_filter
        member = b""
        if filtered:
            member = member_of(self._fingerprinter.fingerprint(request))
            if member in self._local_seen:
                self.stats.inc_value("frontier/duplicates_local")
                return False
        try:
            payload = request_to_bytes(request, self.spider)
        except (FrontierError, ValueError) as exc:
            logger.error("frontier: %s", exc)
            self.stats.inc_value("frontier/unserializable")
            return False
        if filtered:
            if len(self._local_seen) >= LOCAL_SEEN_MAX:
                self._local_seen.clear()
            self._local_seen.add(member)
        self._frontier.push((member, request.priority, payload, filtered))
        self.stats.inc_value("frontier/enqueued")
        return True

    def next_request(self) -> Request | None:
        return self._frontier.next_request()
