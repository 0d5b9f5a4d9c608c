"""The API's side of the crawl frontier: seed, pause, clear and read a job's queue.

Every call goes through `crawler.frontier.JobFrontier`, the frontier's one
(async) client; a Redis error becomes `ServiceUnavailable`. The live counters
are read with the API's async client. Callers that still hold the blocking
client (`redis_sync`) get its calls run in worker threads, so the event loop
never waits on Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import anyio.to_thread
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobapi.errors import ServiceUnavailable


class _InThreads:
    """A blocking Redis client seen as an async one: each call runs in a worker thread."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def register_script(self, script: str) -> Callable[..., Awaitable[Any]]:
        blocking = self._client.register_script(script)

        async def run(**kwargs: Any) -> Any:
            return await anyio.to_thread.run_sync(lambda: blocking(**kwargs))

        return run

    async def scan_iter(self, **kwargs: Any) -> AsyncIterator[Any]:
        keys = await anyio.to_thread.run_sync(lambda: list(self._client.scan_iter(**kwargs)))
        for key in keys:
            yield key

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await anyio.to_thread.run_sync(lambda: method(*args, **kwargs))

        return call


def _frontier(client: redis.Redis | aioredis.Redis, job_id: str) -> Any:
    try:
        from crawler.frontier import JobFrontier
    except ImportError as exc:
        raise ServiceUnavailable(
            "The crawl frontier (crawler.frontier) is not installed.",
            hint="Install the crawler package with the API.",
        ) from exc
    if isinstance(client, redis.Redis):
        client = _InThreads(client)
    return JobFrontier(client, job_id)


async def _call(client: redis.Redis | aioredis.Redis, job_id: str,
                operation: Callable[[Any], Awaitable[Any]]) -> Any:
    try:
        return await operation(_frontier(client, job_id))
    except RedisError as exc:
        raise ServiceUnavailable(
            f"The crawl frontier in Redis cannot be reached ({type(exc).__name__}).",
            hint="Check that Redis runs and that REDIS_URL points at it.",
        ) from exc


async def seed(client: redis.Redis | aioredis.Redis, job_id: str, urls: Sequence[str]) -> int:
    """Queue a job's start URLs; return how many were new."""
    return await _call(client, job_id, lambda frontier: frontier.seed(list(urls)))


async def clear(client: redis.Redis | aioredis.Redis, job_id: str) -> None:
    """Drop everything a job has queued or leased."""
    await _call(client, job_id, lambda frontier: frontier.clear())


async def pause(client: redis.Redis | aioredis.Redis, job_id: str) -> None:
    """Stop handing out a job's requests (workers finish what they hold)."""
    await _call(client, job_id, lambda frontier: frontier.pause())


async def return_leases(client: redis.Redis | aioredis.Redis, job_id: str) -> int:
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
        from crawler.frontier import JobFrontier
    except ImportError:
        return None
    try:
        value: dict[str, Any] | None = dict(await JobFrontier(client, job_id).stats())
    except RedisError:
        value = None
    if len(_live) >= 10_000:
        _live.clear()
    _live[job_id] = (now + LIVE_STATS_SECONDS, value)
    return value
