"""A crawler process's share of the frontier, kept in step with Redis by one task.

`FrontierWorker` holds what this process must tell Redis (the outbox of new
requests, the acknowledgements of `crawler.frontier.acks`) and what Redis has
given it (leased requests not handed out yet), and its background task trades
them, as often as there is something to trade and at least every
``poll_seconds``:

1. it pushes the outbox, then acknowledges the ready leases: a done request's
   children were enqueued before it finished, so they are pushed in this round
   or an earlier one, and nothing a response led to is lost; then it swaps
   the leases of deferred requests (`defer`) for their not-before times;
2. it leases ahead while no more than half of ``prefetch`` is left, and wakes
   the engine as soon as requests arrive;
3. every third of the lease it renews the leases it holds, requeues expired
   ones (any dead worker's) and refreshes the job's counts (an idle worker
   refreshes them every round);
4. on a paused job it gives back what it has not handed out; on an ended job
   (finished or cancelled, its frontier cleared: `crawler.frontier.queue`) it
   drops its leased requests and its outbox and leases nothing more. Once
   nothing is in flight it has no pending requests, and `stop_reason` tells
   the scheduler why the spider closes (``paused``, or ``ENDED_REASON``).

While Redis is unreachable the task backs off (up to ``retry_max_seconds``)
and retries, keeping the outbox and the acknowledgements in memory; the crawl
goes on with what is leased. On close it gives back the leases it did not use.

Stats: counters of this worker (``frontier/leased_total`` requests leased,
``frontier/dequeued``, ``frontier/pushed_new``, ``frontier/acked``,
``frontier/deferred_total``, ``frontier/reclaimed``, ``frontier/redis_errors``,
``frontier/undecodable``), and gauges of the whole job as of the last refresh
(``frontier/queued``, ``frontier/leased``, ``frontier/seen``,
``frontier/workers``, ``frontier/deferred``), with this worker's
``frontier/inflight``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Container
from typing import Any

from redis.exceptions import RedisError
from scrapy import Request

from crawler.frontier.acks import Acknowledgements
from crawler.frontier.queue import ENDED_REASON, Entry, JobFrontier

logger = logging.getLogger(__name__)
CLOSE_TIMEOUT = 30.0


class FrontierWorker:
    """The local state of one worker on a job's frontier; see the module docstring.

    `decode` restores a leased request, `wake_engine` makes the engine ask for
    requests now; `in_progress` is passed on to `Acknowledgements`.
    """

    def __init__(
        self,
        frontier: JobFrontier,
        stats: Any,
        *,
        worker_id: str,
        lease_ms: int,
        prefetch: int,
        poll_seconds: float,
        retry_max_seconds: float,
        decode: Callable[[bytes], Request],
        in_progress: Callable[[], Container[Request] | None],
        wake_engine: Callable[[], None],
    ) -> None:
        self.frontier = frontier
        self.stats = stats
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        self.prefetch = max(1, prefetch)
        self.poll_seconds = poll_seconds
        self.retry_max_seconds = retry_max_seconds
        self._decode = decode
        self._wake_engine = wake_engine
        self.acks = Acknowledgements(in_progress, self.wake)
        self.outbox: list[Entry] = []
        self.local: deque[tuple[bytes, Request]] = deque()
        self.remote: dict[str, int] | None = None  # None: not known (yet)
        # True from a push, ack or lease until the next stats refresh: until then
        # the remote counts do not show what this worker just did.
        self._stale = True
        self.paused = False
        self.ended = False
        self._closing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_maintenance = 0.0

    def start(self) -> None:
        """Start the background task (on the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    def wake(self) -> None:
        """Have the task run a round now."""
        self._wake.set()

    def push(self, entry: Entry) -> None:
        self.outbox.append(entry)
        self._wake.set()

    def defer(self, request: Request, delay_ms: int) -> bool:
        """Fetch a handed-out request later, by any worker: not before `delay_ms` from now.

        The lease is swapped for the deferral in Redis in the next round (one
        atomic step); until then the lease is renewed like any other. False if
        this worker did not hand the request out. (Once the job has ended,
        Redis takes no deferral: the request is dropped like its queue.)
        """
        if not self.acks.defer(request, delay_ms):
            return False
        self._wake.set()
        return True

    def holds(self, request: Request) -> bool:
        """Whether this worker handed `request` out (only such a request can be deferred)."""
        return self.acks.holds(request)

    def next_request(self) -> Request | None:
        """Hand out the next leased request, or None (and lease more)."""
        self.acks.sweep()
        if not self.local:
            self._wake.set()
            return None
        member, request = self.local.popleft()
        self.acks.hand_out(member, request)
        if len(self.local) <= self.prefetch // 2:
            self._wake.set()
        self.stats.inc_value("frontier/dequeued")
        return request

    @property
    def stop_reason(self) -> str | None:
        """Why this worker stops although the crawl is not done: the job paused or ended."""
        if self.ended:
            return ENDED_REASON
        return "paused" if self.paused else None

    def has_pending(self) -> bool:
        """True while this worker or, as far as it knows, any other may still get work."""
        if self.ended:
            return self.acks.busy  # what is in flight finishes; nothing more comes
        if self.local or self.outbox or self.acks.busy or self._stale:
            return True
        if self.paused:
            return False
        if self.remote is None:
            return True
        return self.remote["queued"] + self.remote["leased"] + self.remote["deferred"] > 0

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
                self.remote = None
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
        frontier = self.frontier
        self.acks.sweep()
        # Snapshot both: an acknowledged request's children were enqueued before
        # it finished, so they are in this outbox or an earlier one.
        outbox, self.outbox = self.outbox, []
        acks = self.acks.take()
        deferrals = self.acks.take_deferrals()
        if outbox or acks or deferrals:
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
            if deferrals:
                deferred = await frontier.defer(deferrals)
                self.stats.inc_value("frontier/deferred_total", deferred)
                deferrals = []
        finally:
            self.outbox[:0] = outbox
            self.acks.put_back(acks)
            self.acks.put_back_deferrals(deferrals)
        if self._closing:
            return
        if not self.local:
            self.acks.hurry_commits()
        got = 0
        if not self.paused and not self.ended and len(self.local) <= self.prefetch // 2:
            got = await self._lease(self.prefetch - len(self.local))
        if self.ended:
            self._on_ended()
            self._wake_engine()  # to see that nothing is pending
            return
        now = self._loop.time()
        idle = not self.local and not self.acks.inflight
        if now >= self._next_maintenance:
            self._next_maintenance = now + self.lease_ms / 3000
            held = [m for m, _ in self.local] + self.acks.held()
            await frontier.renew(held, self.lease_ms)
            reclaimed = await frontier.reclaim()
            if reclaimed:
                logger.info("frontier: requeued %d expired leases", reclaimed)
                self.stats.inc_value("frontier/reclaimed", reclaimed)
            await self._refresh()
        elif idle or self.remote is None:
            await self._refresh()
        if self.paused and self.local:
            await self._on_paused()
        if got or idle:
            self._wake_engine()

    async def _lease(self, count: int) -> int:
        taken, state = await self.frontier.lease(count, self.lease_ms, self.worker_id)
        if state == "ended":
            logger.info("frontier: job %s has ended (finished or cancelled); this worker "
                        "fetches nothing more", self.frontier.job_id)
            self.ended = True
            return 0
        paused = state == "paused"
        if paused != self.paused:
            logger.info("frontier: job %s %s", self.frontier.job_id,
                        "paused" if paused else "resumed")
        self.paused = paused
        if taken:
            self._stale = True
        for member, payload in taken:
            try:
                request = self._decode(payload)
            except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the job
                logger.error("frontier: dropping a request that cannot be restored: %s", exc)
                self.stats.inc_value("frontier/undecodable")
                self.acks.done(member)
                continue
            self.local.append((member, request))
        self.stats.inc_value("frontier/leased_total", len(taken))
        return len(taken)

    async def _refresh(self) -> None:
        stats = await self.frontier.stats(self.worker_id, self.lease_ms)
        self.remote = stats
        self._stale = False
        self.paused = self.paused or bool(stats["paused"])
        for key in ("queued", "leased", "seen", "workers", "deferred"):
            self.stats.set_value(f"frontier/{key}", stats[key])
        self.stats.set_value("frontier/inflight",
                             len(self.acks.inflight) + len(self.local) + len(self.acks.awaiting))

    async def _on_paused(self) -> None:
        """Give back what this worker has not handed out; the spider closes once idle."""
        members = [m for m, _ in self.local]
        self.local.clear()
        await self.frontier.release(members)
        logger.info("frontier: job paused, this worker closes once its requests are done")

    def _on_ended(self) -> None:
        """Drop what is leased and to push: the job's frontier is gone and takes nothing."""
        if self.local or self.outbox:
            logger.info("frontier: dropping %d leased and %d new requests of the ended job",
                        len(self.local), len(self.outbox))
        self.local.clear()
        self.outbox.clear()

    # --- closing ----------------------------------------------------------------

    async def close(self) -> None:
        """Stop the task, flush what Redis must know and give back unused leases."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self.acks.sweep()
        self.acks.release_committed()
        if self.acks.awaiting:
            # Their items did not reach PostgreSQL: the leases expire and the
            # requests are fetched again.
            logger.warning("frontier: %d done requests left unacknowledged (items not "
                           "committed)", len(self.acks.awaiting))
        # Whatever the engine did not finish goes back to the queue at once.
        unused = [m for m, _ in self.local] + self.acks.abandon()
        self.local.clear()
        deadline = self._loop.time() + CLOSE_TIMEOUT
        delay = 0.1
        while True:
            try:
                await self._sync()
                await self.frontier.release(unused)
                await self.frontier.leave(self.worker_id)
                break
            except (RedisError, OSError) as exc:
                if self._loop.time() >= deadline:
                    # Not lost: unacknowledged leases expire and are fetched again.
                    logger.error("frontier: could not flush to Redis on close (%s); %d pushes "
                                 "and %d acks left to lease expiry", exc, len(self.outbox),
                                 len(self.acks.ready))
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
