"""The crawler's Redis client waits for a free connection instead of failing past its pool."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import MaxConnectionsError

from crawler.redisclient import client_for


async def _hold_connections(client: aioredis.Redis, calls: int) -> list[object]:
    # BLPOP on an empty list holds its connection for the whole timeout.
    return await asyncio.gather(*(client.blpop([f"cg-test:empty:{i}"], timeout=0.2)
                                  for i in range(calls)), return_exceptions=True)


def test_more_calls_than_connections_wait_and_all_succeed(redis_url: str) -> None:
    async def run() -> list[object]:
        client = client_for(redis_url, max_connections=8)
        try:
            return await _hold_connections(client, 150)
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [None] * 150


def test_redis_pys_default_pool_fails_past_its_size(redis_url: str) -> None:
    """Why `client_for` exists: the default client loses calls past 100 at once."""
    async def run() -> list[object]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await _hold_connections(client, 150)
        finally:
            await client.aclose()

    failures = [r for r in asyncio.run(run()) if isinstance(r, Exception)]
    assert failures and all(isinstance(f, MaxConnectionsError) for f in failures)
