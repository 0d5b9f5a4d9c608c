"""The Redis frontier's queue, seen-set and leases (real Redis, no crawler)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from scrapy import Request

from crawler.frontier import JobFrontier
from crawler.frontier.serialize import request_from_bytes, request_to_bytes, url_member


@pytest.fixture
def client(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def frontier(client: redis.Redis) -> JobFrontier:
    return JobFrontier(client, str(uuid.uuid4()))


def _entry(url: str, priority: int = 0) -> tuple[bytes, int, bytes, bool]:
    return url_member(url), priority, request_to_bytes(Request(url, priority=priority)), True


def test_seed_stores_one_canonical_spelling(frontier: JobFrontier) -> None:
    assert frontier.seed(["HTTP://A.test:80/x#top", "http://a.test/x"]) == 1
    ((_, payload),) = frontier.lease(1, 60_000)
    assert b"http://a.test/x" in payload


def test_seed_skips_seen_urls_and_counts_new(frontier: JobFrontier) -> None:
    assert frontier.seed(["http://a.test/1", "http://a.test/2", "http://a.test/1"]) == 2
    assert frontier.seed(["http://a.test/2", "http://a.test/3"]) == 1
    stats = frontier.stats()
    assert (stats["queued"], stats["leased"], stats["seen"]) == (3, 0, 3)


def test_lease_order_priority_then_fifo(frontier: JobFrontier) -> None:
    frontier.push([_entry("http://a.test/low", -1), _entry("http://a.test/first"),
                   _entry("http://a.test/second"), _entry("http://a.test/high", 5)])
    taken = frontier.lease(10, 60_000)
    urls = [request_from_bytes(payload).url for _, payload in taken]
    assert urls == ["http://a.test/high", "http://a.test/first", "http://a.test/second",
                    "http://a.test/low"]
    assert frontier.stats()["leased"] == 4


def test_distinct_leases_and_ack_marks_done(frontier: JobFrontier) -> None:
    frontier.seed([f"http://a.test/{i}" for i in range(10)])
    first = frontier.lease(4, 60_000)
    second = frontier.lease(10, 60_000)
    assert len(first) == 4 and len(second) == 6
    assert not {m for m, _ in first} & {m for m, _ in second}
    assert frontier.ack([m for m, _ in first]) == 4
    stats = frontier.stats()
    assert (stats["queued"], stats["leased"], stats["seen"]) == (0, 6, 10)
    # Done URLs stay seen: pushing them again queues nothing.
    assert frontier.seed(["http://a.test/0", "http://a.test/1"]) == 0


def test_expired_lease_returns_to_queue_in_its_place(frontier: JobFrontier) -> None:
    frontier.push([_entry("http://a.test/a", 3), _entry("http://a.test/b")])
    (member, _), = frontier.lease(1, 200)
    assert frontier.reclaim() == 0
    time.sleep(0.3)
    assert frontier.reclaim() == 1
    stats = frontier.stats()
    assert (stats["queued"], stats["leased"]) == (2, 0)
    # The reclaimed request keeps its priority: it comes out first again.
    (again, payload), = frontier.lease(1, 60_000)
    assert again == member and request_from_bytes(payload).url == "http://a.test/a"


def test_renew_keeps_a_lease_alive(frontier: JobFrontier) -> None:
    frontier.seed(["http://a.test/a"])
    (member, _), = frontier.lease(1, 300)
    for _ in range(3):
        time.sleep(0.15)
        assert frontier.renew([member], 300) == 1
    assert frontier.reclaim() == 0
    assert frontier.ack([member]) == 1
    assert frontier.renew([member], 300) == 0


def test_ack_after_expiry_drops_the_requeued_copy(frontier: JobFrontier) -> None:
    frontier.seed(["http://a.test/a"])
    (member, _), = frontier.lease(1, 50)
    time.sleep(0.1)
    assert frontier.reclaim() == 1
    frontier.ack([member])
    assert frontier.stats()["queued"] == 0
    assert frontier.lease(1, 1000) == []


def test_release_gives_leases_back(frontier: JobFrontier) -> None:
    frontier.seed(["http://a.test/a", "http://a.test/b"])
    taken = frontier.lease(2, 60_000)
    assert frontier.release([m for m, _ in taken]) == 2
    assert frontier.stats()["queued"] == 2


def test_dont_filter_requests_bypass_the_seen_set(frontier: JobFrontier) -> None:
    member, _, payload, _ = _entry("http://a.test/a")
    frontier.seed(["http://a.test/a"])
    assert frontier.push([(member, 0, payload, False), (member, 0, payload, False)]) == 2
    assert frontier.stats()["queued"] == 3


def test_pause_stops_leasing_and_resume_goes_on(frontier: JobFrontier) -> None:
    frontier.seed(["http://a.test/a"])
    frontier.pause()
    assert frontier.is_paused()
    assert frontier.lease(5, 60_000) == []
    frontier.resume()
    assert not frontier.is_paused()
    assert len(frontier.lease(5, 60_000)) == 1


def test_jobs_are_isolated_and_clear_removes_only_one_job(client: redis.Redis) -> None:
    one, two = JobFrontier(client, str(uuid.uuid4())), JobFrontier(client, str(uuid.uuid4()))
    one.seed([f"http://a.test/{i}" for i in range(300)])
    two.seed(["http://a.test/1"])
    assert two.stats()["queued"] == 1
    one.clear()
    assert one.stats() == {"queued": 0, "leased": 0, "seen": 0, "paused": 0, "workers": 0}
    assert not list(client.scan_iter(match=one.keys.pattern))
    assert two.stats()["queued"] == 1
    assert one.seed(["http://a.test/1"]) == 1


def test_workers_heartbeat_and_expire(frontier: JobFrontier) -> None:
    assert frontier.stats("w1", 200)["workers"] == 1
    assert frontier.stats("w2", 60_000)["workers"] == 2
    time.sleep(0.3)
    assert frontier.stats()["workers"] == 1
