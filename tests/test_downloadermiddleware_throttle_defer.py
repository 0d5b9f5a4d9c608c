"""A request whose host is not due soon goes back to the frontier instead of holding a slot.

The state's decision (`acquire_or_defer`: reserve, at the concurrency limit,
or come back later, one interval after the request deferred before) is
asserted on what the state holds, in the process and in Redis; the crawl
test runs many named sites on the Redis frontier with a delay longer than
`CRAWLGRAPH_THROTTLE_DEFER_AFTER` and checks, against the generator's truth,
that every page was stored, that requests were deferred, and that no two
reservations of a host came closer than its delay.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from typing import Any

import psycopg
import pytest

from crawler.middlewares.throttleredis import RedisThrottleState
from crawler.middlewares.throttlestate import LocalThrottleState
from tests.crawlrun import run_crawl
from tests.websites import websites_fixture  # noqa: F401

SITE = "crawler.spiders.site.SiteSpider"


async def _decisions(state: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Delay 2 s, defer past 0.5 s: the first request is reserved at once ...
    out["first"] = await state.acquire_or_defer("h:1", 2.0, 0, "a", 60, 0.5)
    out["next"] = (await state.get("h:1"))["next"]
    # ... the next three are not due for 2 s: deferred, one interval apart, and
    # nothing is reserved for them (the host's next start stays).
    out["deferred"] = [await state.acquire_or_defer("h:1", 2.0, 0, f"d{i}", 60, 0.5)
                       for i in range(3)]
    out["next_after"] = (await state.get("h:1"))["next"]
    # A host due now but at its concurrency limit is busy, not deferred.
    out["one"] = await state.acquire_or_defer("h:2", 0.0, 1, "x", 60, 0.5)
    out["busy"] = await state.acquire_or_defer("h:2", 0.0, 1, "y", 60, 0.5)
    await state.release("h:2", "x")
    out["free"] = await state.acquire_or_defer("h:2", 0.0, 1, "y", 60, 0.5)
    return out


def _check(out: dict[str, Any]) -> None:
    assert out["first"][0] == "ok" and out["first"][1] < 0.05
    verdicts = [v for v, _ in out["deferred"]]
    seconds = [s for _, s in out["deferred"]]
    assert verdicts == ["defer"] * 3
    # Come back when the host is due (2 s), then one interval (2 s) after each other.
    assert 1.9 < seconds[0] <= 2.0 + 1e-3
    gaps = [b - a for a, b in zip(seconds, seconds[1:], strict=False)]
    assert all(abs(gap - 2.0) < 0.05 for gap in gaps), seconds
    assert out["next_after"] == pytest.approx(out["next"], abs=1e-3)
    assert out["one"][0] == "ok" and out["busy"] == ("busy", 0.0) and out["free"][0] == "ok"


def test_local_state_defers_a_host_not_due_and_spreads_its_deferrals():
    _check(asyncio.run(_decisions(LocalThrottleState())))


def test_redis_state_defers_alike_for_every_worker(redis_url):
    async def scenario() -> dict[str, Any]:
        state = RedisThrottleState(redis_url, str(uuid.uuid4()))
        try:
            return await _decisions(state)
        finally:
            await state.close()

    _check(asyncio.run(scenario()))


@pytest.mark.slow
def test_sites_with_a_long_delay_are_crawled_through_deferrals(websites, database_url,
                                                               redis_url):
    sites = websites(sites=[f"d{i}.test" for i in range(6)], pages=2)
    world = sites.world
    job = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        owner = conn.execute("INSERT INTO users (username, password_hash) VALUES ('d', 'x') "
                             "RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO jobs (id, owner_id, spider, status) "
                     "VALUES (%s, %s, 'site', 'running')", (job, owner))
    starts = [world.home(s) for s in world.sites]
    # Fewer download slots than sites, a delay past DEFER_AFTER: a request waiting
    # for its host would keep the others out; the throttle's state is this process's
    # (SHARED off) so that every reservation is recorded.
    settings = {**sites.settings, "CRAWLGRAPH_DATABASE_URL": database_url,
                "CRAWLGRAPH_REDIS_URL": redis_url, "CONCURRENT_REQUESTS": 3,
                "CRAWLGRAPH_THROTTLE_MIN_DELAY": 1.0, "CRAWLGRAPH_THROTTLE_DEFER_AFTER": 0.3,
                "CRAWLGRAPH_THROTTLE_SHARED": False, "CRAWLGRAPH_THROTTLE_ADAPTIVE": False}
    result = run_crawl(SITE, {"job_id": str(job), "start_urls": json.dumps(starts)},
                       settings, stack=True, timeout=240, record_throttle=True)
    assert result.returncode == 0, result.log[-3000:]
    with psycopg.connect(database_url) as conn:
        stored = {row[0] for row in conn.execute(
            "SELECT final_url FROM pages WHERE job_id = %s AND status = 200", (job,))}
    assert stored == world.page_urls() - {u for u in world.pages if world.site_of(u) is None}
    assert result.stats.get("throttle/deferred", 0) > 0
    assert result.stats.get("frontier/deferrals", 0) == result.stats["throttle/deferred"]
    starts_by_host: dict[str, list[float]] = defaultdict(list)
    for r in result.reservations:
        starts_by_host[r["host"]].append(r["start"])
    for host, times in starts_by_host.items():
        times.sort()
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(gap >= 1.0 - 1e-6 for gap in gaps), (host, gaps)


def test_more_calls_at_once_than_connections_wait_for_one(redis_url, caplog):
    """Hundreds of requests in the download slots reserve at once: each waits for a
    connection, none fails for want of one (and is retried as if Redis were down)."""
    from crawler.middlewares.throttleredis import MAX_CONNECTIONS

    async def scenario() -> list[Any]:
        state = RedisThrottleState(redis_url, str(uuid.uuid4()))
        try:
            calls = [state.acquire_or_defer(f"h{i % 50}:1", 0.0, 0, f"t{i}", 60, 1.0)
                     for i in range(MAX_CONNECTIONS * 8)]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await state.close()

    with caplog.at_level("WARNING", logger="crawler.middlewares.throttleredis"):
        results = asyncio.run(scenario())
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert {r[0] for r in results} == {"ok"}
    assert [r.getMessage() for r in caplog.records] == []
