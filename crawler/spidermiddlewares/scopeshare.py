"""What the workers of a job learned about its scope, shared in Redis (`RedisScope`).

A worker that learns a start URL's redirect target adds it to the job's set
`crawlgraph:<job>:scope` (kept 30 days after a worker last opened or
learned) before any request of that response leaves; the others adopt it when
a request falls outside their own scope (`crawler.spidermiddlewares.scope`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")
SHARED_TTL_SECONDS = 30 * 24 * 3600


class SharedScope(Protocol):
    """Where the workers of a job keep the URLs they learned (`RedisScope`)."""

    async def add(self, url: str) -> None: ...
    async def count(self) -> int: ...
    async def members(self) -> set[str]: ...
    async def touch(self) -> None: ...
    async def close(self) -> None: ...


class RedisScope:
    """The learned URLs of a job: a Redis set, `crawlgraph:<job>:scope`."""

    def __init__(self, redis_url: str, job_id: str, *, give_up_after: float = 60.0) -> None:
        from crawler.redisclient import client_for

        self.client = client_for(redis_url)
        self.key = f"crawlgraph:{job_id}:scope"
        self.give_up_after = give_up_after

    async def _call(self, call: Callable[[], Awaitable[T]], default: T) -> T:
        """Run one Redis call, retried with backoff while Redis is unreachable.

        After `give_up_after` seconds the worker goes on with what it knows
        (`default`): its requests wait for Redis no longer than that.
        """
        import redis

        delay, waited = 0.1, 0.0
        while True:
            try:
                return await call()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                if waited >= self.give_up_after:
                    logger.warning("scope: Redis unavailable for %.0fs, deciding with this "
                                   "worker's scope only: %s", waited, exc)
                    return default
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    async def add(self, url: str) -> None:
        async def run() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.sadd(self.key, url)
                pipe.expire(self.key, SHARED_TTL_SECONDS)
                await pipe.execute()

        await self._call(run, None)

    async def count(self) -> int:
        return int(await self._call(lambda: self.client.scard(self.key), 0))

    async def members(self) -> set[str]:
        members = await self._call(lambda: self.client.smembers(self.key), set())
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def touch(self) -> None:
        await self._call(lambda: self.client.expire(self.key, SHARED_TTL_SECONDS), None)

    async def close(self) -> None:
        await self.client.aclose()
