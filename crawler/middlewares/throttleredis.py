"""The throttle state of a job in Redis, shared by all its workers.

The same operations as `crawler.middlewares.throttlestate.LocalThrottleState`,
each one atomic on the Redis side (`crawler.middlewares.throttlescripts`), so
four workers on one job are together as polite as one. While Redis is
unreachable a reservation waits and retries (a request is never sent
unthrottled), and bookkeeping gives up after about a minute. A worker holds
at most `MAX_CONNECTIONS` connections; more calls at once wait for a free one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from crawler.middlewares import throttlescripts
from crawler.redisclient import MAX_CONNECTIONS, client_for

logger = logging.getLogger(__name__)


class RedisThrottleState:
    """The throttle state of a job, in Redis, shared by all its workers."""

    def __init__(self, redis_url: str, job_id: str) -> None:
        # Every request in the download slots may be in a call at once: past the
        # pool's size a call waits for a connection instead of failing.
        self.client = client_for(redis_url, max_connections=MAX_CONNECTIONS,
                                 socket_timeout=None)
        self.prefix = f"crawlgraph:{job_id}:throttle:"
        self._acquire = self.client.register_script(throttlescripts.ACQUIRE)
        self._acquire_or_defer = self.client.register_script(throttlescripts.ACQUIRE_OR_DEFER)
        self._adapt = self.client.register_script(throttlescripts.ADAPT)
        self._pause = self.client.register_script(throttlescripts.PAUSE)

    def _keys(self, host: str) -> tuple[str, str]:
        return self.prefix + host, self.prefix + "inflight:" + host

    async def _call(self, call: Any, *, forever: bool) -> Any:
        """Run one Redis call; while Redis is unreachable, wait and retry.

        A reservation (`forever`) is retried until Redis answers: the request
        waits, it is never sent unthrottled nor failed. Bookkeeping calls give
        up after about a minute: a lost release only lets its reservation
        expire with its lease.
        """
        import redis

        delay, waited = 0.1, 0.0
        while True:
            try:
                return await call()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                if not forever and waited > 60:
                    logger.warning("throttle: giving up a Redis update after %.0fs: %s",
                                   waited, exc)
                    return None
                logger.warning("throttle: Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    async def acquire(self, host: str, min_delay: float, max_concurrency: int, token: str,
                      lease: float) -> float:
        keys = self._keys(host)
        return float(await self._call(
            lambda: self._acquire(keys=keys, args=[min_delay, max_concurrency, token, lease]),
            forever=True))

    async def acquire_or_defer(self, host: str, min_delay: float, max_concurrency: int,
                               token: str, lease: float, defer_after: float
                               ) -> tuple[str, float]:
        keys = self._keys(host)
        verdict, seconds = await self._call(
            lambda: self._acquire_or_defer(
                keys=keys, args=[min_delay, max_concurrency, token, lease, defer_after]),
            forever=True)
        return verdict.decode(), float(seconds)

    async def release(self, host: str, token: str) -> None:
        await self._call(lambda: self.client.zrem(self._keys(host)[1], token), forever=False)

    async def adapt(self, host: str, latency: float, target: float, lo: float, hi: float,
                    ok: bool, release: str = "") -> float:
        result = await self._call(
            lambda: self._adapt(keys=self._keys(host),
                                args=[latency, target, lo, hi, int(ok), release]),
            forever=False)
        return float(result) if result is not None else lo

    async def pause(self, host: str, seconds: float | None, base: float, cap: float,
                    release: str = "") -> float:
        result = await self._call(
            lambda: self._pause(keys=self._keys(host),
                                args=[-1 if seconds is None else seconds, base, cap, release]),
            forever=True)
        return float(result)

    async def set_field(self, host: str, name: str, value: float) -> None:
        await self._call(lambda: self.client.hset(self._keys(host)[0], name, str(value)),
                         forever=True)

    async def get(self, host: str) -> dict[str, float]:
        raw = await self._call(lambda: self.client.hgetall(self._keys(host)[0]), forever=True)
        return {k.decode(): float(v) for k, v in raw.items()}

    async def close(self) -> None:
        await self.client.aclose()
