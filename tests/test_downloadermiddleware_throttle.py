"""Throttling: Retry-After pauses, backoff, concurrency and delays shared through Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from crawler.middlewares.retryafter import parse_retry_after
from crawler.middlewares.throttleredis import RedisThrottleState
from crawler.middlewares.throttlestate import LocalThrottleState
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def test_429_with_retry_after_pauses_the_host(mock_server):
    server = mock_server(pages=6, links_per_page=1, faults={"/p/2": [429]}, retry_after=2)
    result = run_crawl(SITE, {"start_urls": server.start_url}, LOOPBACK)
    assert len(result.pages) == 6 and all(p["status"] == 200 for p in result.pages)
    log = [r for r in server.requests() if r.path.startswith("/p/")]
    first_429 = next(i for i, r in enumerate(log) if r.path == "/p/2")
    after = log[first_429 + 1]
    assert after.time - log[first_429].time >= 2.0
    assert result.stats["throttle/paused/429"] == 1


def test_503_without_retry_after_backs_off(mock_server):
    server = mock_server(pages=3, links_per_page=1, faults={"/p/1": [503, 503]})
    result = run_crawl(SITE, {"start_urls": server.start_url},
                       {**LOOPBACK, "CRAWLGRAPH_THROTTLE_BACKOFF_BASE": 0.4})
    assert len(result.pages) == 3
    times = [r.time for r in server.requests() if r.path == "/p/1"]
    assert len(times) == 3
    # Exponential: the second pause (base * 2, with jitter >= 1) is longer than base.
    assert times[1] - times[0] >= 0.4 and times[2] - times[1] >= 0.8


def test_min_delay_holds_between_the_reservations_of_a_host(mock_server):
    server = mock_server(pages=8, links_per_page=4, seed=2)
    result = run_crawl(SITE, {"start_urls": server.start_url},
                       {**LOOPBACK, "CRAWLGRAPH_THROTTLE_MIN_DELAY": 0.3}, record_throttle=True)
    assert len(server.paths("/p/")) == 8
    # Every request to the host (robots.txt too) had a reservation, each starting no
    # earlier than the one before it plus the interval, at least the minimum delay:
    # the start times the throttle hands out, not when the server saw the requests.
    reservations = result.reservations
    assert len(reservations) == len(server.requests())
    assert {r["host"] for r in reservations} == {f"127.0.0.1:{server.port}"}
    for before, after in zip(reservations, reservations[1:], strict=False):
        assert before["interval"] >= 0.3
        assert after["start"] - before["start"] >= before["interval"] - 1e-6, (before, after)


def test_retry_after_parsing():
    assert parse_retry_after(b"2", 300) == 2.0
    assert parse_retry_after(b"9999", 300) == 300.0
    assert parse_retry_after(b"nonsense", 300) is None
    assert parse_retry_after(None, 300) is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= parse_retry_after(date, 300) <= 31


def _reserve(state, n: int, min_delay: float) -> list[float]:
    """Reserve `n` requests to one host; return the host's `next` after each."""
    async def go() -> list[float]:
        nexts = []
        for i in range(n):
            assert await state.acquire("h:1", min_delay, 0, f"t{i}", 60) >= 0
            nexts.append((await state.get("h:1"))["next"])
        return nexts
    return asyncio.run(go())


def test_redis_state_is_shared_between_workers(redis_url):
    """What one worker reserves or pauses holds the other back, whatever the calls take.

    Asserted on the host's state in Redis (``next``: the earliest start of the next
    request, ``paused_until``), not on wall-clock waits.
    """
    job = str(uuid.uuid4())

    async def scenario() -> dict[str, Any]:
        one, two = RedisThrottleState(redis_url, job), RedisThrottleState(redis_url, job)
        out: dict[str, Any] = {"waits": [], "nexts": []}
        try:
            # Two workers reserving alternately: each reservation starts no earlier
            # than the one before it (of either worker) plus the 0.5 s delay.
            for i in range(4):
                state = one if i % 2 == 0 else two
                out["waits"].append(await state.acquire("h:1", 0.5, 0, f"t{i}", 60))
                out["nexts"].append((await state.get("h:1"))["next"])
            # A pause set by one worker holds the other back.
            out["pause"] = await one.pause("h:2", 3.0, 1.0, 300)
            out["paused"] = await two.acquire("h:2", 0.0, 0, "p", 60)
            out["held"] = await one.get("h:2")
            # Concurrency: two in flight on h:3, the third must wait for a release.
            await one.acquire("h:3", 0.0, 2, "a", 60)
            await two.acquire("h:3", 0.0, 2, "b", 60)
            out["full"] = await one.acquire("h:3", 0.0, 2, "c", 60)
            await two.release("h:3", "a")
            out["free"] = await one.acquire("h:3", 0.0, 2, "c", 60)
            return out
        finally:
            await one.close()
            await two.close()

    out = asyncio.run(scenario())
    assert out["waits"][0] == 0  # nothing reserved before it
    # Redis keeps the times to 0.1 ms (Lua's tostring); the delay is 0.5 s.
    nexts = out["nexts"]
    gaps = [b - a for a, b in zip(nexts, nexts[1:], strict=False)]
    assert all(gap >= 0.5 - 1e-3 for gap in gaps), gaps
    # The other worker's reservation starts when the pause ends, not before.
    assert out["pause"] == 3.0
    assert out["held"]["next"] >= out["held"]["paused_until"]
    assert 0 <= out["paused"] <= 3.0 + 1e-3
    assert out["full"] == -1 and out["free"] >= 0


def test_other_job_does_not_share(redis_url):
    async def scenario() -> list[float]:
        a = RedisThrottleState(redis_url, str(uuid.uuid4()))
        b = RedisThrottleState(redis_url, str(uuid.uuid4()))
        try:
            return [await a.acquire("h:1", 5, 0, "x", 60), await b.acquire("h:1", 5, 0, "y", 60)]
        finally:
            await a.close()
            await b.close()

    assert max(asyncio.run(scenario())) < 0.05


def test_local_state_adapts_to_latency():
    state = LocalThrottleState()

    async def go() -> list[float]:
        out = []
        for _ in range(5):
            out.append(await state.adapt("h:1", 2.0, 4.0, 0.0, 60.0, True))
        out.append(await state.adapt("h:1", 0.0, 4.0, 0.0, 60.0, False))  # errors never speed up
        return out

    delays = asyncio.run(go())
    assert delays[0] == 0.5 and all(d == 0.5 for d in delays)
    # Each reservation starts at least the minimum delay after the one before.
    nexts = _reserve(LocalThrottleState(), 3, 0.2)
    assert all(b - a >= 0.2 - 1e-6 for a, b in zip(nexts, nexts[1:], strict=False)), nexts


def test_a_recrawls_304_may_lower_the_delay_as_a_200_does_and_errors_never():
    from crawler.middlewares.throttle import may_speed_up

    assert [s for s in (200, 204, 301, 304, 404, 500) if may_speed_up(s)] == [200, 304]


def test_calls_made_together_share_one_round_trip(redis_url):
    """The reservations of a worker's download slots, made at once, reach Redis in a
    pipeline or two, not one request each; each is still decided on its own, in order.

    Round trips are counted at the client: the session's Redis serves other clients
    too, so its own counters are no measure of this one."""

    async def scenario() -> tuple[list[tuple[str, float]], list[int]]:
        state = RedisThrottleState(redis_url, str(uuid.uuid4()))
        trips: list[int] = []
        send = state._round_trip

        async def counted(batch):
            trips.append(len(batch))
            return await send(batch)

        try:
            await state.get("h:1")  # connected, scripts aside
            state._round_trip = counted
            results = await asyncio.gather(*(
                state.acquire_or_defer("h:1", 0.0, 4, f"t{i}", 60, 1.0) for i in range(64)))
            return results, trips
        finally:
            await state.close()

    results, trips = asyncio.run(scenario())
    # The host takes 4 at once: the first four calls made have it, the others find it busy.
    assert [r[0] for r in results] == ["ok"] * 4 + ["busy"] * 60
    # The first call goes alone, the 63 made meanwhile together (a retry after a
    # restart's NOSCRIPT at most doubles the round trips).
    assert sum(trips) >= 64 and len(trips) <= 4, trips
