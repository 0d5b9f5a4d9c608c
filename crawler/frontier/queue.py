"""The per-job frontier in Redis: a leased priority queue with a seen-set.

`JobFrontier` is the one client of a job's frontier, over a
``redis.asyncio`` client: the job API seeds, pauses, resumes, clears and reads
the stats of a job with it, and the scheduler of every crawler process pushes,
leases, renews, defers and acknowledges. Every operation is a Lua script
(`crawler.frontier.scripts`), so each step is atomic on the Redis side and a
retried call changes nothing twice. A caller without an event loop (a
benchmark, a test) runs a call in ``asyncio.run``.

A job's frontier ends once (`end` when its last worker finishes, `clear` when
the API cancels or abandons it): a tombstone is set, then every other key is
deleted. From then on a push queues nothing and a lease answers ``"ended"``,
so a crawler process that starts late (scrapyd had no free slot, a
replacement) closes with the reason `ENDED_REASON` instead of crawling the job
again from its start URLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import redis
import redis.asyncio

from crawler.frontier import scripts
from crawler.frontier.serialize import request_to_bytes, url_member

# A pushed request: (member, priority, payload, filtered by the seen-set).
Entry = tuple[bytes, int, bytes, bool]
# A leased request to fetch later: (member, delay in ms).
Deferral = tuple[bytes, int]
# What a lease says about the job: it hands out requests, it is paused, or it has ended.
LeaseState = Literal["open", "paused", "ended"]
RECLAIM_BATCH = 1000
# How long an ended job's tombstone outlives it. Past that, a worker that starts
# still finds the job's row finished or cancelled (`crawler.extensions`).
ENDED_TTL_SECONDS: Final = 7 * 86_400
#: The close reason of a crawler process whose job had ended before it could crawl.
ENDED_REASON: Final = "job_ended"


@dataclass(frozen=True, slots=True)
class FrontierKeys:
    """Redis key names of one job; the hash tag keeps them on one cluster slot."""

    job_id: str

    def key(self, suffix: str) -> str:
        return f"cg:{{{self.job_id}}}:{suffix}"

    @property
    def queue(self) -> str:
        return self.key("q")

    @property
    def requests(self) -> str:
        return self.key("r")

    @property
    def leases(self) -> str:
        return self.key("l")

    @property
    def lease_scores(self) -> str:
        return self.key("ls")

    @property
    def seen_prefix(self) -> str:
        return self.key("s:")

    @property
    def seen_count(self) -> str:
        return self.key("n")

    @property
    def sequence(self) -> str:
        return self.key("c")

    @property
    def paused(self) -> str:
        return self.key("p")

    @property
    def workers(self) -> str:
        return self.key("w")

    @property
    def ended(self) -> str:
        return self.key("x")

    @property
    def deferred(self) -> str:
        return self.key("d")

    @property
    def deferred_scores(self) -> str:
        return self.key("ds")

    @property
    def pattern(self) -> str:
        return self.key("*")


def _push_args(keys: FrontierKeys, entries: Iterable[Entry]) -> tuple[list[str], list[Any]]:
    argv: list[Any] = [keys.seen_prefix]
    for member, priority, payload, filtered in entries:
        argv += [member, int(priority), payload, b"1" if filtered else b"0"]
    return [keys.queue, keys.requests, keys.seen_count, keys.sequence, keys.ended], argv


def _lease_result(flat: Sequence[Any]) -> tuple[list[tuple[bytes, bytes]], LeaseState]:
    if flat and flat[0] == -1:
        return [], "paused"
    if flat and flat[0] == -2:
        return [], "ended"
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)], "open"


def _stats(values: Sequence[int]) -> dict[str, int]:
    queued, leased, seen, paused, workers, deferred = (int(v) for v in values)
    return {"queued": queued, "leased": leased, "seen": seen, "paused": paused,
            "workers": workers, "deferred": deferred}


class JobFrontier:
    """The frontier of one job, over a `redis.asyncio.Redis` client."""

    def __init__(self, client: redis.asyncio.Redis, job_id: str) -> None:
        if isinstance(client, redis.Redis):
            raise TypeError("JobFrontier needs a redis.asyncio client, not a blocking "
                            "redis.Redis; without an event loop, run its calls in asyncio.run")
        self.client = client
        self.job_id = str(job_id)
        self.keys = FrontierKeys(self.job_id)
        self._push = client.register_script(scripts.PUSH)
        self._lease = client.register_script(scripts.LEASE)
        self._renew = client.register_script(scripts.RENEW)
        self._ack = client.register_script(scripts.ACK)
        self._defer = client.register_script(scripts.DEFER)
        self._release = client.register_script(scripts.RELEASE)
        self._reclaim = client.register_script(scripts.RECLAIM)
        self._stats = client.register_script(scripts.STATS)
        self._end = client.register_script(scripts.END)

    @property
    def _lease_keys(self) -> list[str]:
        k = self.keys
        return [k.queue, k.requests, k.leases, k.lease_scores, k.paused, k.workers, k.ended,
                k.deferred, k.deferred_scores]

    @property
    def _ack_keys(self) -> list[str]:
        k = self.keys
        return [k.queue, k.requests, k.leases, k.lease_scores, k.deferred, k.deferred_scores]

    @property
    def _requeue_keys(self) -> list[str]:
        k = self.keys
        return [k.queue, k.leases, k.lease_scores]

    @property
    def _stats_keys(self) -> list[str]:
        k = self.keys
        return [k.queue, k.leases, k.seen_count, k.paused, k.workers, k.ended, k.deferred]

    async def seed(self, urls: list[str]) -> int:
        """Queue depth-0 GET requests for the URLs not seen yet; return how many were new."""
        from scrapy import Request

        from crawler.urls import canonicalize

        entries = []
        for url in dict.fromkeys(canonicalize(u) for u in urls):
            # One spelling per URL, the one every link of the crawl uses.
            request = Request(url, meta={"depth": 0})
            entries.append((url_member(url), 0, request_to_bytes(request), True))
        return await self.push(entries)

    async def push(self, entries: Sequence[Entry]) -> int:
        """Queue serialized requests; filtered ones only if their member is unseen.

        Returns how many were queued: none once the job has ended.
        """
        if not entries:
            return 0
        keys, argv = _push_args(self.keys, entries)
        return int(await self._push(keys=keys, args=argv))

    async def lease(self, count: int, lease_ms: int, worker: str = ""
                    ) -> tuple[list[tuple[bytes, bytes]], LeaseState]:
        """Take up to `count` requests, leased for `lease_ms`: ([(member, payload)], state).

        A paused or ended job hands out nothing, and says so (`state`) in the same
        round trip. With a `worker`, its heartbeat is recorded first (live for
        `lease_ms`), so that a worker holding leases always counts as live.
        Deferred requests that are due go back into the queue first, in their place.
        """
        flat = await self._lease(keys=self._lease_keys,
                                 args=[count, lease_ms, worker, lease_ms, RECLAIM_BATCH])
        return _lease_result(flat)

    async def renew(self, members: Sequence[bytes], lease_ms: int) -> int:
        """Extend the leases that still exist to `lease_ms` from now; return how many."""
        if not members:
            return 0
        return int(await self._renew(keys=[self.keys.leases], args=[lease_ms, *members]))

    async def ack(self, members: Sequence[bytes]) -> int:
        """Mark leased requests done (their items are committed)."""
        if not members:
            return 0
        return int(await self._ack(keys=self._ack_keys, args=list(members)))

    async def defer(self, deferrals: Sequence[Deferral]) -> int:
        """Swap leases for deferrals: each (member, delay ms) is leased again once due.

        The request keeps its place (priority, then first in) and its payload; a
        member whose lease has expired meanwhile is left where it is (queued, or
        another worker's). Returns how many were deferred: none once the job ended.
        """
        if not deferrals:
            return 0
        k = self.keys
        argv: list[Any] = []
        for member, delay_ms in deferrals:
            argv += [member, max(0, int(delay_ms))]
        return int(await self._defer(
            keys=[k.leases, k.lease_scores, k.deferred, k.deferred_scores, k.ended], args=argv))

    async def deferred(self) -> list[tuple[bytes, int]]:
        """Every deferred member with the time it is due (Redis server time, ms)."""
        rows = await self.client.zrange(self.keys.deferred, 0, -1, withscores=True)
        return [(member, int(score)) for member, score in rows]

    async def release(self, members: Sequence[bytes]) -> int:
        """Give leases back to the queue at once (a worker that stops cleanly)."""
        if not members:
            return 0
        return int(await self._release(keys=self._requeue_keys, args=list(members)))

    async def reclaim(self) -> int:
        """Requeue expired leases; return how many."""
        return int(await self._reclaim(keys=self._requeue_keys, args=[RECLAIM_BATCH]))

    async def leased(self) -> list[bytes]:
        """The members of every request leased right now, by any worker."""
        return list(await self.client.zrange(self.keys.leases, 0, -1))

    async def stats(self, worker: str = "", heartbeat_ms: int = 0) -> dict[str, int]:
        """`queued`, `leased`, `seen`, `paused` (0/1), live `workers` and `deferred`.

        With a `worker`, also its heartbeat: it counts as live for `heartbeat_ms`.
        """
        return _stats(await self._stats(keys=self._stats_keys, args=[worker, heartbeat_ms]))

    async def leave(self, worker: str) -> None:
        """Remove a worker from the live-workers set."""
        await self.client.zrem(self.keys.workers, worker)

    async def pause(self) -> None:
        """Stop handing out requests; workers finish what they hold and stop."""
        await self.client.set(self.keys.paused, b"1")

    async def resume(self) -> None:
        """Hand out requests again (schedule workers to go on with the job)."""
        await self.client.delete(self.keys.paused)

    async def is_paused(self) -> bool:
        return bool(await self.client.exists(self.keys.paused))

    async def end(self, *, require_empty: bool = True) -> bool:
        """End the job if no worker is live (by default: and nothing is queued, leased, deferred).

        The check and the tombstone are one step, then the job's other keys are
        deleted. Returns whether the job has ended (now or before).
        """
        k = self.keys
        ended = int(await self._end(keys=[k.queue, k.leases, k.workers, k.ended, k.deferred],
                                    args=[b"1" if require_empty else b"0",
                                          ENDED_TTL_SECONDS * 1000]))
        if ended:
            await self._delete_all_but_the_tombstone()
        return bool(ended)

    async def has_ended(self) -> bool:
        return bool(await self.client.exists(self.keys.ended))

    async def clear(self) -> None:
        """End the job now: its tombstone, then no queue, leases, seen-set or flags."""
        await self.client.set(self.keys.ended, b"1", ex=ENDED_TTL_SECONDS)
        await self._delete_all_but_the_tombstone()

    async def _delete_all_but_the_tombstone(self) -> None:
        tombstone = self.keys.ended.encode()
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=self.keys.pattern, count=1000):
            if key == tombstone:
                continue
            batch.append(key)
            if len(batch) >= 1000:
                await self.client.unlink(*batch)
                batch.clear()
        if batch:
            await self.client.unlink(*batch)
