"""The Scrapy scheduler on the shared Redis frontier: leased, at-least-once delivery.

Switch it on with ``SCHEDULER = "crawler.frontier.scheduler.RedisScheduler"``
(on in `crawler.settings`). It serves the job named by the spider argument
``job_id`` (or ``CRAWLGRAPH_JOB_ID``); without one it hands over to Scrapy's
in-memory scheduler, so a spider still runs on its own. Settings:
``CRAWLGRAPH_REDIS_URL`` (else env ``REDIS_URL``), ``CRAWLGRAPH_LEASE_SECONDS``,
``CRAWLGRAPH_PREFETCH``, ``CRAWLGRAPH_POLL_SECONDS``,
``CRAWLGRAPH_RETRY_MAX_SECONDS``.

How a request travels:

1. `enqueue_request` fingerprints and serializes the request and puts it in a
   local outbox; a background task pushes the outbox to Redis, where the seen-set
   check and the queueing are one atomic step.
2. The same task leases requests ahead (``PREFETCH``) into a local deque, so
   `next_request` answers at once, with no Redis round trip and no idle wait,
   and pokes the engine as soon as new requests arrive. Leases are renewed every
   third of ``LEASE_SECONDS`` while this process holds them.
3. A handed-out request is done when the engine drops it from its in-progress
   set: Scrapy does that only after the response went through the spider and
   every item it produced went through the item pipelines (requests the
   download produced instead, redirects and retries, were enqueued before
   that). If `crawler.pipelines.StoragePipeline` is on, the scheduler then
   notes its `commit_barrier()` and waits until the pipeline's `committed`
   watermark has reached it, i.e. until every item of the response is in
   PostgreSQL. Done leases are acknowledged after every request enqueued
   before them has been pushed, so nothing a response led to is lost.
4. A worker that dies leaves its leases to expire; any live worker requeues
   them. A worker that stops cleanly gives back the leases it did not use.

Redis unreachable: the task backs off and retries, keeping the outbox and the
acknowledgements in memory; the crawl goes on with what is leased. While any
request of the job is queued or leased by anyone, `has_pending_requests()`
stays true, so no worker quits while work may still come back. A paused job
(`JobFrontier.pause()`) stops handing out requests and its workers close with
reason ``paused`` once their in-flight requests are done.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import deque
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError
from scrapy import Request, Spider
from scrapy.core.scheduler import BaseScheduler, Scheduler
from scrapy.utils.defer import deferred_from_coro

from crawler.frontier.errors import FrontierError
from crawler.frontier.queue import AsyncJobFrontier, Entry
from crawler.frontier.serialize import member_of, request_from_bytes, request_to_bytes
from crawler.pipelines.storage import StoragePipeline
from crawler.scrapyinternals import requests_in_progress, wake_engine

logger = logging.getLogger(__name__)
# Members this worker has pushed; skipping them saves Redis round trips for the
# many links to pages already known. Cleared when it grows past this size.
LOCAL_SEEN_MAX = 1_000_000
CLOSE_TIMEOUT = 30.0


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
        self._outbox: list[Entry] = []
        self._acks: list[bytes] = []
        # Done requests waiting for their items' commit: (barrier, member), in order.
        self._awaiting: deque[tuple[int, bytes]] = deque()
        self._storage: Any = None
        self._local: deque[tuple[bytes, Request]] = deque()
        self._inflight: dict[int, tuple[bytes, Request]] = {}
        self._local_seen: set[bytes] = set()
        self._remote: dict[str, int] | None = None  # None: not known (yet)
        # True from a push, ack or lease until the next stats refresh: until then
        # the remote counts do not show what this worker just did.
        self._stale = True
        self._paused = False
        self._closing = False
        self._close_requested = False
        self._client: redis.asyncio.Redis | None = None
        self._frontier: AsyncJobFrontier | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_maintenance = 0.0

    @classmethod
    def from_crawler(cls, crawler: Any) -> BaseScheduler:
        settings = crawler.settings
        job_id = getattr(crawler.spider, "job_id", None) or settings.get("CRAWLGRAPH_JOB_ID")
        if not job_id:
            logger.info("frontier: no job_id, using Scrapy's in-memory scheduler")
            return Scheduler.from_crawler(crawler)
        url = settings.get("CRAWLGRAPH_REDIS_URL") or os.environ.get("REDIS_URL")
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

    # --- the scheduler interface ------------------------------------------------

    def open(self, spider: Spider) -> None:
        self.spider = spider
        self._loop = asyncio.get_running_loop()
        self._client = redis.asyncio.Redis.from_url(
            self.redis_url, socket_timeout=10, socket_connect_timeout=5
        )
        self._frontier = AsyncJobFrontier(self._client, self.job_id)
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run())
        self._storage = StoragePipeline.for_crawler(self.crawler)
        if self._storage is not None:
            self._storage.add_commit_listener(self._release_committed)
        logger.info("frontier: worker %s on job %s", self.worker, self.job_id)

    def close(self, reason: str) -> Any:
        return deferred_from_coro(self._close(reason))

    def has_pending_requests(self) -> bool:
        if (self._local or self._outbox or self._acks or self._inflight or self._awaiting
                or self._stale):
            return True
        if self._paused:
            return not self._close_requested
        if self._remote is None:
            return True
        return self._remote["queued"] + self._remote["leased"] > 0

    def enqueue_request(self, request: Request) -> bool:
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
        self._outbox.append((member, request.priority, payload, filtered))
        self.stats.inc_value("frontier/enqueued")
        self._wake.set()
        return True

    def next_request(self) -> Request | None:
        self._sweep()
        if not self._local:
            self._wake.set()
            return None
        member, request = self._local.popleft()
        self._inflight[id(request)] = (member, request)
        if len(self._local) <= self.prefetch // 2:
            self._wake.set()
        self.stats.inc_value("frontier/dequeued")
        return request

    # --- tracking requests the engine has finished ------------------------------

    def _sweep(self) -> None:
        """Move handed-out requests the engine has finished with to the ack list."""
        if not self._inflight:
            return
        # The engine holds a request until the items of its response are through
        # the pipelines.
        inprogress = requests_in_progress(self.crawler)
        if inprogress is None:
            return
        done = [key for key, (_, request) in self._inflight.items() if request not in inprogress]
        if not done:
            return
        if self._storage is None:
            self._acks += [self._inflight.pop(key)[0] for key in done]
            self._wake.set()
            return
        # The items of these responses are appended by now; they are committed
        # once the pipeline's watermark reaches the current barrier.
        barrier = self._storage.commit_barrier()
        for key in done:
            self._awaiting.append((barrier, self._inflight.pop(key)[0]))
        self._release_committed()

    def _release_committed(self) -> None:
        committed = self._storage.committed
        released = False
        while self._awaiting and self._awaiting[0][0] <= committed:
            self._acks.append(self._awaiting.popleft()[1])
            released = True
        if released and self._wake is not None:
            self._wake.set()

    # --- the background task ----------------------------------------------------

    async def _run(self) -> None:
        delay = 0.1
        failing = False
        while True:
            self._wake.clear()
            try:
                await self._sync()
            except Exception as exc:  # noqa: BLE001 - the task must outlive any error
                if isinstance(exc, RedisError | OSError):
                    self.stats.inc_value("frontier/redis_errors")
                    if not failing:
                        logger.warning("frontier: Redis unreachable (%s); retrying with backoff",
                                       exc)
                else:
                    logger.exception("frontier: unexpected error; retrying with backoff")
                failing = True
                self._remote = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
                if self._closing:
                    return
                continue
            if failing:
                logger.info("frontier: Redis reachable again")
                failing, delay = False, 0.1
            if self._closing:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    async def _sync(self) -> None:
        frontier = self._frontier
        self._sweep()
        # Snapshot both: an acknowledged request's children were enqueued before
        # it finished, so they are in this outbox or an earlier one.
        outbox, self._outbox = self._outbox, []
        acks, self._acks = self._acks, []
        if outbox or acks:
            self._stale = True
        try:
            if outbox:
                added = await frontier.push(outbox)
                self.stats.inc_value("frontier/pushed_new", added)
                outbox = []
            if acks:
                await frontier.ack(acks)
                self.stats.inc_value("frontier/acked", len(acks))
                acks = []
        finally:
            self._outbox[:0] = outbox
            self._acks[:0] = acks
        if self._closing:
            return
        if self._awaiting and not self._inflight and not self._local:
            # Nothing else is in flight: waiting for the flush timer only delays the end.
            self._storage.flush_now()
        got = 0
        if not self._paused and len(self._local) <= self.prefetch // 2:
            got = await self._lease(self.prefetch - len(self._local))
        now = self._loop.time()
        idle = not self._local and not self._inflight
        if now >= self._next_maintenance:
            self._next_maintenance = now + self.lease_ms / 3000
            held = [m for m, _ in self._local] + [m for m, _ in self._inflight.values()]
            held += [m for _, m in self._awaiting] + self._acks
            await frontier.renew(held, self.lease_ms)
            reclaimed = await frontier.reclaim()
            if reclaimed:
                logger.info("frontier: requeued %d expired leases", reclaimed)
                self.stats.inc_value("frontier/reclaimed", reclaimed)
            await self._refresh()
        elif idle or self._remote is None:
            await self._refresh()
        if self._paused and not self._close_requested:
            await self._on_paused()
        if got or idle:
            wake_engine(self.crawler)

    async def _lease(self, count: int) -> int:
        taken, paused = await self._frontier.lease(count, self.lease_ms)
        if paused != self._paused:
            logger.info("frontier: job %s %s", self.job_id, "paused" if paused else "resumed")
        self._paused = paused
        if taken:
            self._stale = True
        for member, payload in taken:
            try:
                request = request_from_bytes(payload, self.spider)
            except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the job
                logger.error("frontier: dropping a request that cannot be restored: %s", exc)
                self.stats.inc_value("frontier/undecodable")
                self._acks.append(member)
                continue
            self._local.append((member, request))
        self.stats.inc_value("frontier/leased", len(taken))
        return len(taken)

    async def _refresh(self) -> None:
        stats = await self._frontier.stats(self.worker, self.lease_ms)
        self._remote = stats
        self._stale = False
        self._paused = self._paused or bool(stats["paused"])
        for key in ("queued", "leased", "seen", "workers"):
            self.stats.set_value(f"frontier/{key}", stats[key])
        self.stats.set_value("frontier/inflight",
                             len(self._inflight) + len(self._local) + len(self._awaiting))

    async def _on_paused(self) -> None:
        if self._local:
            members = [m for m, _ in self._local]
            self._local.clear()
            await self._frontier.release(members)
        if not self._inflight and not self._acks and not self._outbox and not self._awaiting:
            self._close_requested = True
            logger.info("frontier: job paused, closing this worker")
            engine = self.crawler.engine
            self._loop.create_task(engine.close_spider_async(reason="paused"))

    async def _close(self, reason: str) -> None:
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        self._sweep()
        if self._storage is not None:
            self._release_committed()
        if self._awaiting:
            # Their items did not reach PostgreSQL: the leases expire and the
            # requests are fetched again.
            logger.warning("frontier: %d done requests left unacknowledged (items not "
                           "committed)", len(self._awaiting))
        # Whatever the engine did not finish goes back to the queue at once.
        unused = [m for m, _ in self._local] + [m for m, _ in self._inflight.values()]
        self._local.clear()
        self._inflight.clear()
        deadline = self._loop.time() + CLOSE_TIMEOUT
        delay = 0.1
        while True:
            try:
                await self._sync()
                await self._frontier.release(unused)
                await self._frontier.leave(self.worker)
                break
            except (RedisError, OSError) as exc:
                if self._loop.time() >= deadline:
                    # Not lost: unacknowledged leases expire and are fetched again.
                    logger.error("frontier: could not flush to Redis on close (%s); %d pushes "
                                 "and %d acks left to lease expiry", exc, len(self._outbox),
                                 len(self._acks))
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        await self._client.aclose()
        logger.info("frontier: worker %s closed (%s)", self.worker, reason)
