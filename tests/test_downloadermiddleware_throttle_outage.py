"""The Redis-shared throttle waits through a Redis restart instead of failing requests."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from crawler.middlewares.throttleredis import RedisThrottleState
from stack import Stack
from tests.conftest import make_home, stack_environ


@pytest.fixture
def private_redis():
    home = make_home()
    stack = Stack(stack_environ(home), only={"redis"})
    stack.up()
    yield stack
    stack.down()
    shutil.rmtree(home, ignore_errors=True)


def test_acquire_waits_for_redis_to_come_back(private_redis):
    state = RedisThrottleState(private_redis.settings.redis_url, "job-outage")

    async def scenario() -> tuple[float, float]:
        assert await state.acquire("127.0.0.1:1", 0.0, 4, "t1", 30) >= 0
        private_redis.down()
        started = time.monotonic()
        pending = asyncio.create_task(state.acquire("127.0.0.1:1", 0.0, 4, "t2", 30))
        await asyncio.sleep(1.0)
        assert not pending.done()  # waiting, not failed, while Redis is away
        await asyncio.to_thread(private_redis.up)
        wait = await asyncio.wait_for(pending, 30)
        await state.release("127.0.0.1:1", "t2")
        await state.close()
        return wait, time.monotonic() - started

    wait, elapsed = asyncio.run(scenario())
    assert wait >= 0
    assert elapsed >= 1.0
