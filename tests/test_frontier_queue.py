"""The Redis frontier's queue, seen-set and leases (real Redis, no crawler)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from scrapy import Request

from crawler.frontier import FrontierKeys, JobFrontier
from crawler.frontier.serialize import request_from_bytes, request_to_bytes, url_member


class BlockingFrontier:
    """A job's `JobFrontier` for code without an event loop (tests, benchmarks).

    Each call runs in `asyncio.run` on a client of its own (a client belongs to
    the event loop it was first used on): ``BlockingFrontier(url, job).stats()``.
    """

    def __init__(self, redis_url: str, job_id: str) -> None:
        self.redis_url = redis_url
        self.job_id = job_id
        self.keys = FrontierKeys(job_id)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(JobFrontier, name)

        async def run(*args: Any, **kwargs: Any) -> Any:
            client = redis.asyncio.Redis.from_url(self.redis_url)
            try:
                return await method(JobFrontier(client, self.job_id), *args, **kwargs)
            finally:
                await client.aclose()

        return lambda *args, **kwargs: asyncio.run(run(*args, **kwargs))


@pytest.fixture
def client(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def frontier(redis_url: str) -> BlockingFrontier:
    return BlockingFrontier(redis_url, str(uuid.uuid4()))


def _entry(url: str, priority: int = 0) -> tuple[bytes, int, bytes, bool]:
    return url_member(url), priority, request_to_bytes(Request(url, priority=priority)), True


def test_seed_stores_one_canonical_spelling(frontier: BlockingFrontier) -> None:
    assert frontier.seed(["HTTP://A.test:80/x#top", "http://a.test/x"]) == 1
    ((_, payload),), _ = frontier.lease(1, 60_000)
    assert b"http://a.test/x" in payload


def test_seed_skips_seen_urls_and_counts_new(frontier: BlockingFrontier) -> None:
    assert frontier.seed(["http://a.test/1", "http://a.test/2", "http://a.test/1"]) == 2
    assert frontier.seed(["http://a.test/2", "http://a.test/3"]) == 1
    stats = frontier.stats()
    assert (stats["queued"], stats["leased"], stats["seen"]) == (3, 0, 3)


def test_lease_order_priority_then_fifo(frontier: BlockingFrontier) -> None:
    frontier.push([_entry("http://a.test/low", -1), _entry("http://a.test/first"),
                   _entry("http://a.test/second"), _entry("http://a.test/high", 5)])
    taken, _ = frontier.lease(10, 60_000)
    urls = [request_from_bytes(payload).url for _, payload in taken]
    assert urls == ["http://a.test/high", "http://a.test/first", "http://a.test/second",
                    "http://a.test/low"]
    assert frontier.stats()["leased"] == 4


def test_distinct_leases_and_ack_marks_done(frontier: BlockingFrontier) -> None:
    frontier.seed([f"http://a.test/{i}" for i in range(10)])
    first, _ = frontier.lease(4, 60_000)
    second, _ = frontier.lease(10, 60_000)
    assert len(first) == 4 and len(second) == 6
    assert not {m for m, _ in first} & {m for m, _ in second}
    assert frontier.ack([m for m, _ in first]) == 4
    stats = frontier.stats()
    assert (stats["queued"], stats["leased"], stats["seen"]) == (0, 6, 10)
    # Done URLs stay seen: pushing them again queues nothing.
    assert frontier.seed(["http://a.test/0", "http://a.test/1"]) == 0


def test_expired_lease_returns_to_queue_in_its_place(frontier: BlockingFrontier) -> None:
    frontier.push([_entry("http://a.test/a", 3), _entry("http://a.test/b")])
    ((member, _),), _ = frontier.lease(1, 60_000)
    assert frontier.reclaim() == 0  # not expired
    assert frontier.renew([member], 0) == 1  # now it is: it expires at this instant
    assert frontier.reclaim() == 1
    stats = frontier.stats()
    assert (stats["queued"], stats["leased"]) == (2, 0)
    # The reclaimed request keeps its priority: it comes out first again.
    ((again, payload),), _ = frontier.lease(1, 60_000)
    assert again == member and request_from_bytes(payload).url == "http://a.test/a"


def test_renew_keeps_a_lease_alive(frontier: BlockingFrontier) -> None:
    frontier.seed(["http://a.test/a"])
    ((member, _),), _ = frontier.lease(1, 100)
    # A lease that ran out is still renewed as long as nobody has reclaimed it.
    assert frontier.renew([member], 60_000) == 1
    time.sleep(0.2)  # past the first lease's 100 ms
    assert frontier.reclaim() == 0
    assert frontier.ack([member]) == 1
    assert frontier.renew([member], 60_000) == 0


def test_ack_after_expiry_drops_the_requeued_copy(frontier: BlockingFrontier) -> None:
    frontier.seed(["http://a.test/a"])
    ((member, _),), _ = frontier.lease(1, 50)
    time.sleep(0.1)
    assert frontier.reclaim() == 1
    frontier.ack([member])
    assert frontier.stats()["queued"] == 0
    assert frontier.lease(1, 1000) == ([], "open")


def test_release_gives_leases_back(frontier: BlockingFrontier) -> None:
    frontier.seed(["http://a.test/a", "http://a.test/b"])
    taken, _ = frontier.lease(2, 60_000)
    assert frontier.release([m for m, _ in taken]) == 2
    assert frontier.stats()["queued"] == 2


def test_dont_filter_requests_bypass_the_seen_set(frontier: BlockingFrontier) -> None:
    member, _, payload, _ = _entry("http://a.test/a")
    frontier.seed(["http://a.test/a"])
    assert frontier.push([(member, 0, payload, False), (member, 0, payload, False)]) == 2
    assert frontier.stats()["queued"] == 3


def test_pause_stops_leasing_and_resume_goes_on(frontier: BlockingFrontier) -> None:
    frontier.seed(["http://a.test/a"])
    frontier.pause()
    assert frontier.is_paused()
    assert frontier.lease(5, 60_000) == ([], "paused")  # nothing, and says it is paused
    frontier.resume()
    assert not frontier.is_paused()
    taken, state = frontier.lease(5, 60_000)
    assert len(taken) == 1 and state == "open"


def test_jobs_are_isolated_and_clear_removes_only_one_job(client: redis.Redis,
                                                         redis_url: str) -> None:
    one = BlockingFrontier(redis_url, str(uuid.uuid4()))
    two = BlockingFrontier(redis_url, str(uuid.uuid4()))
    one.seed([f"http://a.test/{i}" for i in range(300)])
    two.seed(["http://a.test/1"])
    assert two.stats()["queued"] == 1
    one.clear()
    assert one.stats() == {"queued": 0, "leased": 0, "seen": 0, "paused": 0, "workers": 0,
                           "deferred": 0}
    # Only the tombstone is left, and the cleared job takes nothing again.
    assert list(client.scan_iter(match=one.keys.pattern)) == [one.keys.ended.encode()]
    assert client.ttl(one.keys.ended) > 86_400
    assert one.seed(["http://a.test/1"]) == 0
    assert two.stats()["queued"] == 1


def test_the_last_worker_ends_an_empty_job_and_nothing_comes_after(
        client: redis.Redis, frontier: BlockingFrontier) -> None:
    frontier.seed(["http://a.test/a"])
    assert not frontier.end()  # queued
    ((member, _),), _ = frontier.lease(1, 60_000, "w1")
    assert frontier.stats()["workers"] == 1  # leasing made w1 live
    frontier.ack([member])
    assert not frontier.end()  # w1 is live
    frontier.leave("w1")
    assert frontier.end() and frontier.has_ended()
    assert list(client.scan_iter(match=frontier.keys.pattern)) == [frontier.keys.ended.encode()]
    # A worker starting now: its start URL is not queued again, it leases nothing,
    # it is told the job has ended, and it does not count as live.
    assert frontier.seed(["http://a.test/a"]) == 0
    assert frontier.lease(16, 60_000, "late") == ([], "ended")
    assert frontier.stats("late", 60_000) == {"queued": 0, "leased": 0, "seen": 0,
                                               "paused": 0, "workers": 0, "deferred": 0}
    assert frontier.end()  # ended before: still ended


def test_a_spent_budget_ends_the_job_with_work_left(frontier: BlockingFrontier) -> None:
    frontier.seed(["http://a.test/a", "http://a.test/b"])
    frontier.lease(1, 60_000, "w2")  # w2 still crawls
    assert not frontier.end(require_empty=False)
    frontier.leave("w2")
    assert not frontier.end()  # requests are left: not done ...
    assert frontier.end(require_empty=False)  # ... but the budget is spent
    assert frontier.lease(1, 60_000) == ([], "ended")


def test_workers_heartbeat_and_expire(frontier: BlockingFrontier) -> None:
    assert frontier.stats("w2", 60_000)["workers"] == 1
    assert frontier.stats("w1", 200)["workers"] == 2  # w1 counts from its own heartbeat
    time.sleep(0.3)  # past w1's 200 ms
    assert frontier.stats()["workers"] == 1


def test_leased_lists_every_worker_s_leases(frontier: BlockingFrontier) -> None:
    frontier.seed(["http://a.test/a", "http://a.test/b", "http://a.test/c"])
    first, _ = frontier.lease(1, 60_000)
    second, _ = frontier.lease(1, 60_000)
    assert sorted(frontier.leased()) == sorted(m for m, _ in first + second)


def test_a_blocking_client_is_refused(client: redis.Redis) -> None:
    with pytest.raises(TypeError, match="redis.asyncio"):
        JobFrontier(client, "job")
