"""The API's connection pool (`jobapi.services.loops.QueuedPool`): when every connection
is taken, requests wait their turn in the order they came, and one that waits past the
timeout gets psycopg_pool's PoolTimeout (which the API answers with a 503)."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import PoolTimeout

from jobapi.services.loops import QueuedPool, configure_connection


def _pool(database_url: str) -> QueuedPool:
    return QueuedPool(database_url, min_size=1, max_size=2, open=False, timeout=5.0,
                      configure=configure_connection, kwargs={"autocommit": True})


def test_a_request_that_waits_past_the_timeout_gets_pool_timeout(database_url):
    async def scenario() -> None:
        async with _pool(database_url) as pool:
            async with pool.connection(), pool.connection():
                with pytest.raises(PoolTimeout, match="after 0.20 sec"):
                    async with pool.connection(timeout=0.2):
                        pass
            async with pool.connection() as conn:  # every slot came back
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)

    asyncio.run(scenario())


def test_waiting_requests_get_a_connection_in_the_order_they_came(database_url):
    async def scenario() -> list[int]:
        served: list[int] = []
        async with _pool(database_url) as pool:
            release = asyncio.Event()

            async def hold() -> None:
                async with pool.connection():
                    await release.wait()

            async def ask(n: int) -> None:
                async with pool.connection() as conn:
                    served.append(n)
                    await conn.execute("SELECT 1")

            holders = [asyncio.create_task(hold()) for _ in range(2)]
            await asyncio.sleep(0.2)
            waiters = []
            for n in range(5):
                waiters.append(asyncio.create_task(ask(n)))
                await asyncio.sleep(0.01)
            release.set()
            await asyncio.gather(*holders, *waiters)
        return served

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_an_idle_connection_given_back_serves_the_next_request_and_closes_with_the_pool(
        database_url):
    async def scenario() -> None:
        pool = _pool(database_url)
        await pool.open(wait=True)
        async with pool.connection() as first:
            await first.execute("SELECT 1")
        async with pool.connection() as second:
            assert second is first
            assert await (await second.execute("SELECT 2")).fetchone() == (2,)
        await pool.close()
        assert first.closed

    asyncio.run(scenario())


def test_a_connection_given_back_in_a_transaction_is_rolled_back_by_psycopg_pool(database_url):
    async def scenario() -> None:
        async with _pool(database_url) as pool:
            async with pool.connection() as conn:
                await conn.execute("BEGIN")
                await conn.execute("CREATE TEMPORARY TABLE left_open (n int)")
            async with pool.connection() as again:
                # Whichever connection this is, nothing of the open transaction is left.
                assert again.info.transaction_status.name == "IDLE"
                found = await (await again.execute(
                    "SELECT count(*) FROM pg_class WHERE relname = 'left_open'")).fetchone()
                assert found == (0,)

    asyncio.run(scenario())
