"""The API's side of the crawl frontier: seed, clear and read a job's queue.

`crawler.frontier.JobFrontier` is synchronous (redis-py); these wrappers run it
in a worker thread so that the event loop never waits on Redis. The live
counters are read with `AsyncJobFrontier` over the async client.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobapi.errors import ServiceUnavailable


def _frontier(client: redis.Redis, job_id: str) -> Any:
    try:
        from crawler.frontier import JobFrontier
    except ImportError as exc:
        raise ServiceUnavailable(
            "The crawl frontier (crawler.frontier) is not installed.",
            hint="Install the crawler package with the API.",
        ) from exc
    return JobFrontier(client, job_id)


async def _run(func: Any, *args: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(func, *args)
    except RedisError as exc:
        raise ServiceUnavailable(
            f"The crawl frontier in Redis cannot be reached ({type(exc).__name__}).",
            hint="Check that Redis runs and that REDIS_URL points at it.",
        ) from exc


async def seed(client: redis.Redis, job_id: str, urls: Sequence[str]) -> int:
    """Queue a job's start URLs; return how many were new."""
    return await _run(lambda: _frontier(client, job_id).seed(list(urls)))


async def clear(client: redis.Redis, job_id: str) -> None:
    """Drop everything a job has queued or leased."""
    await _run(lambda: _frontier(client, job_id).clear())


async def pause(client: redis.Redis, job_id: str) -> None:
    """Stop handing out a job's requests (workers finish what they hold)."""
    await _run(lambda: _frontier(client, job_id).pause())


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
        from crawler.frontier import AsyncJobFrontier
    except ImportError:
        return None
    try:
        value: dict[str, Any] | None = dict(await AsyncJobFrontier(client, job_id).stats())
    except RedisError:
        value = None
    if len(_live) >= 10_000:
        _live.clear()
    _live[job_id] = (now + LIVE_STATS_SECONDS, value)
    return value
