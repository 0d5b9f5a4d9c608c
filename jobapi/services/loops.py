"""What the job API and its background processes share: the pool's connections, and the
shape of a loop that runs until SIGTERM or SIGINT.

The API's own pool is a `QueuedPool`: its requests wait for a connection in a queue
that costs them less than psycopg_pool's, and take a connection another request
just gave back without psycopg_pool's bookkeeping.

The scheduler (`schedules_loop`) and the webhook sender (`webhooks_loop`) are
processes of their own that poll PostgreSQL; they open their pool here, stop
on a signal here and wait between passes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core.settings import Settings

SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def configure_connection(conn: psycopg.AsyncConnection) -> None:
    """jsonb columns (params, stats ...) decoded by msgspec: several times faster."""
    set_json_loads(msgspec.json.decode, conn)


class QueuedPool(AsyncConnectionPool):
    """A pool whose users queue on a semaphore of `max_size` slots before they take a
    connection, and that keeps the connections its users give back.

    When more requests than connections want one, psycopg_pool queues each on a
    timed condition of its own, which costs a request a quarter of what its query
    costs; a semaphore is cheaper. The order (first come, first served), the timeout
    and its PoolTimeout stay psycopg_pool's.

    A connection given back idle (no transaction open, not broken) is kept here and
    handed to the next request as it is: taking one from psycopg_pool and giving it
    back (a lock, a reset check and a wake-up each way) cost a third as much as the
    query it serves. Anything else goes back to psycopg_pool, which rolls back,
    replaces or closes it. A kept connection goes back to psycopg_pool too, where its
    idle and lifetime limits apply, once it has been out for `max_lifetime` or unused
    for `max_idle` (checked when a request comes).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(self.max_size)
        # (connection, taken from psycopg_pool at, last given back at), most recent last
        self._kept: list[tuple[psycopg.AsyncConnection, float, float]] = []

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None
                         ) -> AsyncIterator[psycopg.AsyncConnection]:
        timeout = self.timeout if timeout is None else timeout
        started = time.monotonic()
        if self._slots.locked():  # else acquire() returns at once: no timer to set
            try:
                async with asyncio.timeout(timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None
        else:
            await self._slots.acquire()
        try:
            kept = self._kept
            if kept and kept[0][2] < started - self.max_idle:  # the least recently used
                await self.putconn(kept.pop(0)[0])
            if kept:
                conn, taken_at, _ = kept.pop()
            else:
                conn = await self.getconn(max(0.0, timeout - (time.monotonic() - started)))
                taken_at = time.monotonic()
            try:
                yield conn
            finally:
                now = time.monotonic()
                if (conn.pgconn.transaction_status == TransactionStatus.IDLE and not self.closed
                        and now - taken_at < self.max_lifetime):
                    kept.append((conn, taken_at, now))
                else:
                    await self.putconn(conn)
        finally:
            self._slots.release()

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool: the kept connections go back to psycopg_pool, which closes them."""
        kept, self._kept = self._kept, []
        for conn, _, _ in kept:
            await self.putconn(conn)
        await super().close(timeout)


async def open_pool(settings: Settings, *, name: str, max_size: int) -> AsyncConnectionPool:
    """An open autocommit pool of a background process (one statement per round trip)."""
    pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=max_size,
                               open=False, name=name, timeout=10.0,
                               configure=configure_connection, kwargs={"autocommit": True})
    await pool.open(wait=True, timeout=30.0)
    return pool


@contextlib.contextmanager
def stopped_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while the block runs."""
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or until `stop` is set if that comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
