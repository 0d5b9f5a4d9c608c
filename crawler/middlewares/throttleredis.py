"""The throttle state of a job in Redis, shared by all its workers.

The same operations as `crawler.middlewares.throttlestate.LocalThrottleState`,
each one atomic on the Redis side (`crawler.middlewares.throttlescripts`), so
four workers on one job are together as polite as one. While Redis is
unreachable a reservation waits and retries (a request is never sent
unthrottled), and bookkeeping gives up after about a minute.

The calls of a worker are batched: those made while a round trip is under
way (the requests of the download slots reserve and release together) go to
Redis in the next one, one pipeline on one connection, each still its own
atomic script, in the order they were made. A call therefore waits at most
for the round trip before its own; what it does in Redis does not change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crawler.middlewares import throttlescripts
from crawler.redisclient import MAX_CONNECTIONS, client_for

logger = logging.getLogger(__name__)

#: Seconds a bookkeeping call (a release, a latency sample) is retried while Redis is away.
GIVE_UP_SECONDS = 60.0


@dataclass
class _Call:
    """One call waiting for the next round trip: `queue(pipeline)` adds its command."""

    queue: Callable[[Any], Any]
    forever: bool
    future: asyncio.Future[Any]
    script: str | None = None  # the Lua text, when the command is an EVALSHA
    since: float = field(default_factory=time.monotonic)


class RedisThrottleState:
    """The throttle state of a job, in Redis, shared by all its workers."""

    def __init__(self, redis_url: str, job_id: str) -> None:
        # One round trip at a time uses one connection; the others serve `close`.
        self.client = client_for(redis_url, max_connections=MAX_CONNECTIONS,
                                 socket_timeout=None)
        self.prefix = f"crawlgraph:{job_id}:throttle:"
        self._queued: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    def _keys(self, host: str) -> tuple[str, str]:
        return self.prefix + host, self.prefix + "inflight:" + host

    async def _script(self, script: str, keys: tuple[str, str], args: list[Any], *,
                      forever: bool) -> Any:
        sha = throttlescripts.sha(script)
        return await self._call(lambda pipe: pipe.evalsha(sha, len(keys), *keys, *args),
                                forever=forever, script=script)

    async def _call(self, queue: Callable[[Any], Any], *, forever: bool,
                    script: str | None = None) -> Any:
        """Run one Redis command in the next round trip; while Redis is unreachable, retry.

        A reservation (`forever`) is retried until Redis answers: the request
        waits, it is never sent unthrottled nor failed. Bookkeeping calls give
        up after about a minute (None): a lost release only lets its
        reservation expire with its lease.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append(_Call(queue, forever, future, script))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        """Send the queued calls, one pipeline per round trip, until none is left."""
        import redis

        delay = 0.1
        batch: list[_Call] = []
        try:
            while self._queued or batch:
                batch, self._queued = [*batch, *self._queued], []
                batch = [c for c in batch if not c.future.done()]  # the caller gave up
                if not batch:
                    continue
                try:
                    batch = await self._round_trip(batch)
                    delay = 0.1
                except (redis.ConnectionError, redis.TimeoutError,
                        redis.BusyLoadingError) as exc:
                    now = time.monotonic()
                    for c in batch:
                        if not c.forever and now - c.since > GIVE_UP_SECONDS:
                            logger.warning("throttle: giving up a Redis update after %.0fs: "
                                           "%s", now - c.since, exc)
                            c.future.set_result(None)
                    logger.warning("throttle: Redis unavailable (%s); retrying in %.1fs",
                                   exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self._sender = None
            for c in [*batch, *self._queued]:  # cancelled (`close`): nobody sends them
                if not c.future.done():
                    c.future.cancel()

    async def _round_trip(self, batch: list[_Call]) -> list[_Call]:
        """One pipeline of `batch`; returns the calls to send again (scripts Redis lost)."""
        import redis

        async with self.client.pipeline(transaction=False) as pipe:
            for c in batch:
                c.queue(pipe)
            results = await pipe.execute(raise_on_error=False)
        again = []
        for c, result in zip(batch, results, strict=True):
            if isinstance(result, redis.exceptions.NoScriptError) and c.script is not None:
                again.append(c)  # not run: a restarted Redis forgot the script
            elif c.future.done():
                continue
            elif isinstance(result, Exception):
                c.future.set_exception(result)
            else:
                c.future.set_result(result)
        for script in {c.script for c in again}:
            await self.client.script_load(script)
        return again

    async def acquire(self, host: str, min_delay: float, max_concurrency: int, token: str,
                      lease: float) -> float:
        return float(await self._script(throttlescripts.ACQUIRE, self._keys(host),
                                        [min_delay, max_concurrency, token, lease],
                                        forever=True))

    async def acquire_or_defer(self, host: str, min_delay: float, max_concurrency: int,
                               token: str, lease: float, defer_after: float
                               ) -> tuple[str, float]:
        verdict, seconds = await self._script(
            throttlescripts.ACQUIRE_OR_DEFER, self._keys(host),
            [min_delay, max_concurrency, token, lease, defer_after], forever=True)
        return verdict.decode(), float(seconds)

    async def release(self, host: str, token: str) -> None:
        await self._call(lambda pipe: pipe.zrem(self._keys(host)[1], token), forever=False)

    async def adapt(self, host: str, latency: float, target: float, lo: float, hi: float,
                    ok: bool, release: str = "") -> float:
        result = await self._script(throttlescripts.ADAPT, self._keys(host),
                                    [latency, target, lo, hi, int(ok), release], forever=False)
        return float(result) if result is not None else lo

    async def pause(self, host: str, seconds: float | None, base: float, cap: float,
                    release: str = "") -> float:
        result = await self._script(throttlescripts.PAUSE, self._keys(host),
                                    [-1 if seconds is None else seconds, base, cap, release],
                                    forever=True)
        return float(result)

    async def set_field(self, host: str, name: str, value: float) -> None:
        await self._call(lambda pipe: pipe.hset(self._keys(host)[0], name, str(value)),
                         forever=True)

    async def get(self, host: str) -> dict[str, float]:
        raw = await self._call(lambda pipe: pipe.hgetall(self._keys(host)[0]), forever=True)
        return {k.decode(): float(v) for k, v in raw.items()}

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        await self.client.aclose()
