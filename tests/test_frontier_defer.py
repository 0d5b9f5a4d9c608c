"""Deferral: a leased request goes back to the job's frontier with a not-before time.

The queue operations against real Redis, the worker's bookkeeping, and a real
crawl whose downloader middleware defers every page once (`DeferOnce`).
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.test import get_crawler

from crawler import settings as project_settings
from crawler.frontier.acks import Acknowledgements
from crawler.frontier.defer import Defer, DeferMiddleware, can_defer, register
from crawler.spiders.site import SiteSpider
from tests.crawlrun import run_crawl
from tests.test_crawl_reliability import assert_complete, make_job, page_fetches
from tests.test_frontier_queue import BlockingFrontier, _entry

FOLLOW = "tests.spiders.follow.FollowSpider"


@pytest.fixture
def frontier(redis_url: str) -> BlockingFrontier:
    return BlockingFrontier(redis_url, str(uuid.uuid4()))


def _urls(taken: list[tuple[bytes, bytes]]) -> list[str]:
    from crawler.frontier.serialize import request_from_bytes

    return [request_from_bytes(payload).url for _, payload in taken]


def test_a_deferred_request_waits_then_comes_back_in_its_place(
        frontier: BlockingFrontier) -> None:
    frontier.push([_entry(f"http://a.test/{i}") for i in range(3)])
    (first,), _ = frontier.lease(1, 60_000)
    assert frontier.defer([(first[0], 400)]) == 1
    stats = frontier.stats()
    assert (stats["queued"], stats["leased"], stats["deferred"]) == (2, 0, 1)
    taken, _ = frontier.lease(1, 60_000)
    assert _urls(taken) == ["http://a.test/1"]  # not due yet: the next one comes
    [(member, due)] = frontier.deferred()
    assert member == first[0]
    time.sleep(0.5)
    taken, _ = frontier.lease(5, 60_000)
    # Due: back in the queue where it was (before /2), with its payload.
    assert _urls(taken) == ["http://a.test/0", "http://a.test/2"]
    assert frontier.stats()["deferred"] == 0 and frontier.deferred() == []


def test_only_a_held_lease_can_be_deferred(frontier: BlockingFrontier) -> None:
    frontier.push([_entry("http://a.test/x")])
    (taken,), _ = frontier.lease(1, 50)
    time.sleep(0.1)
    assert frontier.reclaim() == 1  # the lease expired: the request is queued again
    assert frontier.defer([(taken[0], 10_000)]) == 0
    assert frontier.stats()["queued"] == 1 and frontier.deferred() == []


def test_a_job_with_deferred_requests_does_not_end_and_ack_forgets_them(
        frontier: BlockingFrontier) -> None:
    frontier.push([_entry("http://a.test/y")])
    (taken,), _ = frontier.lease(1, 60_000)
    frontier.defer([(taken[0], 60_000)])
    assert not frontier.end()  # something still waits
    # A stale worker that fetched it after all acknowledges it: the deferral goes too.
    frontier.ack([taken[0]])
    assert frontier.deferred() == [] and frontier.end()
    assert frontier.defer([(taken[0], 10)]) == 0  # an ended job takes no deferral


def test_clear_removes_the_deferred_requests(frontier: BlockingFrontier, redis_url: str) -> None:
    frontier.push([_entry("http://a.test/z")])
    (taken,), _ = frontier.lease(1, 60_000)
    frontier.defer([(taken[0], 60_000)])
    frontier.clear()
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=frontier.keys.pattern)) == [
            frontier.keys.ended.encode()]
    finally:
        client.close()


def test_a_deferred_request_leaves_the_acknowledgements() -> None:
    one, other = Request("http://a.test/1"), Request("http://a.test/2")
    acks = Acknowledgements(lambda: set(), lambda: None)
    acks.hand_out(b"m1", one)
    assert not acks.defer(other, 100)  # not handed out here
    assert acks.defer(one, 250)
    acks.sweep()  # the engine is done with it: still not ready to acknowledge
    assert acks.take() == [] and acks.held() == [b"m1"] and acks.busy
    assert acks.take_deferrals() == [(b"m1", 250)] and not acks.busy


class _Taker:
    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.taken: list[tuple[str, float, str]] = []

    @property
    def job_frontier(self):  # pragma: no cover - not used here
        raise AssertionError

    def defer(self, request: Request, delay: float, reason: str) -> bool:
        self.taken.append((request.url, delay, reason))
        return self.accept


def test_the_middleware_hands_a_defer_to_the_scheduler_or_lets_it_through() -> None:
    crawler = get_crawler(SiteSpider)
    middleware = DeferMiddleware.from_crawler(crawler)
    request = Request("http://a.test/1")
    assert not can_defer(crawler)
    # Without a frontier a Defer is an IgnoreRequest like any other.
    assert middleware.process_exception(request, Defer(1.5, "later")) is None
    taker = _Taker(accept=True)
    register(crawler, taker)
    assert can_defer(crawler)
    assert middleware.process_exception(request, IgnoreRequest("no")) is None
    assert middleware.process_exception(request, Defer(1.5, "later")) is request
    assert taker.taken == [("http://a.test/1", 1.5, "later")]
    register(crawler, _Taker(accept=False))  # a request the frontier did not hand out
    assert middleware.process_exception(request, Defer(1.0, "later")) is None


class DeferOnce:
    """Test downloader middleware: every page is deferred once, by half a second."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def process_request(self, request: Request) -> None:
        if "/p/" in request.url and request.url not in self.seen:
            self.seen.add(request.url)
            raise Defer(0.5, "test")


def test_a_crawl_whose_pages_are_all_deferred_once_stores_every_page_once(
        mock_server, database_url, redis_url) -> None:
    server = mock_server(pages=40, seed=5)
    job = make_job(database_url)
    middlewares = {**project_settings.DOWNLOADER_MIDDLEWARES,
                   "tests.test_frontier_defer.DeferOnce": 120}
    result = run_crawl(FOLLOW, {"job_id": job, "start_urls": server.start_url},
                       {"CRAWLGRAPH_DATABASE_URL": database_url,
                        "CRAWLGRAPH_REDIS_URL": redis_url, "ROBOTSTXT_OBEY": False,
                        "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True,
                        "DOWNLOADER_MIDDLEWARES": middlewares}, stack=True)
    assert result.reason == "finished", result.log[-3000:]
    assert_complete(server, database_url, job)
    # Each page was requested once: a deferred request is not downloaded.
    assert set(page_fetches(server).values()) == {1}
    stats = result.stats
    assert stats["frontier/deferrals"] == stats["frontier/deferred_total"] == 40
    assert stats["frontier/acked"] == 40  # every request done once, after its deferral
