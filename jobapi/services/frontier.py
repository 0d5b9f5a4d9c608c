"""The API's side of the crawl frontier: seed, pause, clear and read a job's queue.

Every call goes through `crawler.frontier.JobFrontier`, the frontier's one
(async) client; a Redis error becomes `ServiceUnavailable`. The live counters
are read with the same client and kept for a second.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crawler.frontier import JobFrontier
from jobapi.errors import ServiceUnavailable


def _frontier(client: aioredis.Redis, job_id: str) -> Any:
    return JobFrontier(client, job_id)


async def _call(client: aioredis.Redis, job_id: str,
                operation: Callable[[Any], Awaitable[Any]]) -> Any:
    try:
        return await operation(_frontier(client, job_id))
    except RedisError as exc:
        raise ServiceUnavailable(
            f"The crawl frontier in Redis cannot be reached ({type(exc).__name__}).",
            hint="Check that Redis runs and that REDIS_URL points at it.",
        ) from exc


async def seed(client: aioredis.Redis, job_id: str, urls: Sequence[str]) -> int:
    """Queue a job's start URLs; return how many were new."""
    return await _call(client, job_id, lambda frontier: frontier.seed(list(urls)))


async def clear(client: aioredis.Redis, job_id: str) -> None:
    """Drop everything a job has queued or leased; a tombstone stays (7 days) so no late
    worker or seed can start it again."""
    await _call(client, job_id, lambda frontier: frontier.clear())


async def pause(client: aioredis.Redis, job_id: str) -> None:
    """Stop handing out a job's requests (workers finish what they hold)."""
    await _call(client, job_id, lambda frontier: frontier.pause())


async def return_leases(client: aioredis.Redis, job_id: str) -> int:
    """Put every request leased by a job's (dead) workers back in its queue; return how many."""

    async def release(frontier: Any) -> int:
        members = await frontier.leased()
        return await frontier.release(members) if members else 0

    return await _call(client, job_id, release)


LIVE_STATS_SECONDS = 1.0
_live: dict[str, tuple[float, dict[str, Any] | None]] = {}


async def stats(client: aioredis.Redis, job_id: str) -> dict[str, Any] | None:
    """The frontier's live counters for a job (queued, leased, seen ...), None if unavailable.

    Read with the async client and kept for a second: this is on the path of
    every `GET /jobs/{id}`, and many watchers of one job need one read a second.
    """
    now = time.monotonic()
    hit = _live.get(job_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        value: dict[str, Any] | None = dict(await JobFrontier(client, job_id).stats())
    except RedisError:
        value = None
    if len(_live) >= 10_000:
        _live.clear()
    _live[job_id] = (now + LIVE_STATS_SECONDS, value)
    return value
