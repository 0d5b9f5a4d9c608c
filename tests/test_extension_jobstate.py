"""JobStateExtension: job status, close reasons and merged live stats (real PostgreSQL, Redis)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import psycopg
import pytest
import redis
import redis.asyncio
from scrapy import Spider
from scrapy.exceptions import CloseSpider
from scrapy.utils.test import get_crawler

from crawler.extensions import JobStateExtension
from crawler.frontier import ENDED_REASON, JobFrontier
from tests.test_frontier_queue import BlockingFrontier
from tests.test_pipeline_store import make_job


def extension(database_url: str, redis_url: str, job: str, worker: str) -> JobStateExtension:
    crawler = get_crawler(Spider, {"CRAWLGRAPH_DATABASE_URL": database_url,
                                         "CRAWLGRAPH_REDIS_URL": redis_url})
    ext = JobStateExtension(crawler, database_url, redis_url, job, interval=1.0)
    ext.worker = worker
    return ext


def row(database_url: str, job: str) -> dict:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(
            "SELECT status, close_reason, error, stats, started_at IS NOT NULL, "
            "finished_at IS NOT NULL FROM jobs WHERE id = %s", (job,))
        status, reason, error, stats, started, finished = cur.fetchone()
    return {"status": status, "reason": reason, "error": error, "stats": stats,
            "started": started, "finished": finished}


def store_pages(database_url: str, job: str, *pages: tuple[str, int, str | None]) -> None:
    """Pages as the storage pipeline writes them: (url, status, error)."""
    with psycopg.connect(database_url) as conn:
        for url, status, error in pages:
            conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, error) "
                         "VALUES (%s, %s, %s, %s, now(), %s)", (job, url, url, status, error))


def test_running_then_finished_clears_the_frontier(database_url, redis_url) -> None:
    job = make_job(database_url)
    store_pages(database_url, job, ("http://a.test/", 200, None))  # a job that fetched a page
    ext = extension(database_url, redis_url, job, "w1")
    ext._mark_running()
    assert row(database_url, job)["status"] == "running" and row(database_url, job)["started"]
    client = redis.Redis.from_url(redis_url)
    frontier = BlockingFrontier(redis_url, job)
    frontier.seed(["http://a.test/"])
    frontier.ack([m for m, _ in frontier.lease(1, 60_000)[0]])
    ext.crawler.stats.set_value("response_received_count", 7)
    asyncio.run(ext.spider_closed("finished"))
    got = row(database_url, job)
    assert (got["status"], got["reason"], got["finished"]) == ("finished", "finished", True)
    assert got["stats"]["pages"] == 7
    # The frontier is gone but for its tombstone: a late worker finds the job ended.
    assert list(client.scan_iter(match=frontier.keys.pattern)) == [frontier.keys.ended.encode()]
    client.close()


def test_finished_worker_leaves_the_job_running_while_work_remains(database_url,
                                                                   redis_url) -> None:
    job = make_job(database_url)
    ext = extension(database_url, redis_url, job, "w1")
    ext._mark_running()
    frontier = BlockingFrontier(redis_url, job)
    frontier.seed(["http://a.test/"])
    frontier.lease(1, 60_000)  # another worker holds it
    asyncio.run(ext.spider_closed("finished"))
    assert row(database_url, job)["status"] == "running"
    assert frontier.stats()["leased"] == 1


@pytest.mark.parametrize(
    ("reason", "status", "error"),
    [("shutdown", "failed", "crawler closed: shutdown"), ("paused", "paused", None),
     ("closespider_errorcount", "failed", "crawler closed: closespider_errorcount")],
)
def test_close_reasons(database_url, redis_url, reason, status, error) -> None:
    job = make_job(database_url)
    ext = extension(database_url, redis_url, job, "w1")
    ext._mark_running()
    asyncio.run(ext.spider_closed(reason))
    got = row(database_url, job)
    assert (got["status"], got["reason"], got["error"]) == (status, reason, error)
    assert got["finished"] == (status in ("cancelled", "failed"))


def test_a_job_cancelled_by_the_api_stays_cancelled(database_url, redis_url) -> None:
    job = make_job(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE id = %s", (job,))
    ext = extension(database_url, redis_url, job, "w1")
    ext._mark_running()
    asyncio.run(ext.spider_closed("finished"))
    assert row(database_url, job)["status"] == "cancelled"


def test_live_stats_of_workers_are_merged_and_summed(database_url, redis_url) -> None:
    job = make_job(database_url)
    one = extension(database_url, redis_url, job, "w1")
    two = extension(database_url, redis_url, job, "w2")
    one.crawler.stats.set_value("response_received_count", 10)
    one.crawler.stats.set_value("frontier/queued", 50)
    two.crawler.stats.set_value("response_received_count", 5)
    two.crawler.stats.set_value("item_scraped_count", 30)
    two.crawler.stats.set_value("frontier/queued", 40)
    one._write_stats(one._snapshot())
    two._write_stats(two._snapshot())
    one.crawler.stats.set_value("response_received_count", 12)
    one._write_stats(one._snapshot())
    stats = row(database_url, job)["stats"]
    assert set(stats["workers"]) == {"w1", "w2"}
    assert stats["pages"] == 17 and stats["items"] == 30
    assert stats["queue_length"] == 50
    for key in ("errors", "bytes", "pages_per_s", "leases_in_flight"):
        assert key in stats


def test_leased_total_is_the_worker_s_counter_not_the_job_s_gauge(database_url,
                                                                   redis_url) -> None:
    ext = extension(database_url, redis_url, make_job(database_url), "w1")
    ext.crawler.stats.set_value("frontier/leased_total", 120)  # leased by this worker
    ext.crawler.stats.set_value("frontier/leased", 7)  # leased in the job right now
    ext.crawler.stats.set_value("frontier/inflight", 3)
    snapshot = ext._snapshot()
    assert (snapshot["leased_total"], snapshot["leases_in_flight"]) == (120, 3)


def test_spent_budget_finishes_the_job_when_the_last_worker_stops(database_url,
                                                                   redis_url) -> None:
    job = make_job(database_url)
    store_pages(database_url, job, ("http://a.test/", 200, None))  # a job that fetched a page
    client = redis.Redis.from_url(redis_url)
    frontier = BlockingFrontier(redis_url, job)
    frontier.seed(["http://a.test/", "http://a.test/more"])  # work left over

    async def register(worker: str) -> None:
        other = JobFrontier(redis.asyncio.Redis.from_url(redis_url), job)
        await other.stats(worker, 60_000)
        await other.client.aclose()

    async def leave(worker: str) -> None:
        other = JobFrontier(redis.asyncio.Redis.from_url(redis_url), job)
        await other.leave(worker)
        await other.client.aclose()

    first = extension(database_url, redis_url, job, "w1")
    first._mark_running()
    asyncio.run(register("w2"))  # a second worker is still crawling
    asyncio.run(first.spider_closed("max_pages"))
    assert row(database_url, job)["status"] == "running"

    asyncio.run(leave("w2"))
    second = extension(database_url, redis_url, job, "w2")
    asyncio.run(second.spider_closed("max_pages"))
    got = row(database_url, job)
    assert (got["status"], got["reason"], got["error"]) == ("finished", "max_pages", None)
    assert list(client.scan_iter(match=frontier.keys.pattern)) == [frontier.keys.ended.encode()]
    client.close()


@pytest.mark.parametrize("status", ["finished", "failed", "cancelled"])
def test_a_worker_of_an_ended_job_closes_at_once_and_leaves_the_row(database_url, redis_url,
                                                                    status) -> None:
    job = make_job(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET status = %s, close_reason = 'finished', "
                     "stats = '{\"pages\": 3}' WHERE id = %s", (status, job))
    before = row(database_url, job)
    ext = extension(database_url, redis_url, job, "late")
    ext.crawler.engine = SimpleNamespace(scheduler=None)  # spider_opened reads the worker id

    with pytest.raises(CloseSpider) as closed:
        asyncio.run(ext.spider_opened())
    assert closed.value.reason == ENDED_REASON
    ext.crawler.stats.set_value("response_received_count", 1)
    asyncio.run(ext.spider_closed(ENDED_REASON))
    assert row(database_url, job) == before


DNS = "dns: gone.test: the name does not resolve (CannotResolveHostError: no results)"


@pytest.mark.parametrize(("pages", "robots", "error"), [
    ([("http://gone.test/", 0, DNS), ("http://gone.test/a", 0, DNS),
      ("http://b.test/", 404, None)],
     False, "no page could be fetched: gone.test: the name does not resolve (2 URLs)"),
    ([("http://b.test/", 404, None), ("http://b.test/x", 404, None)], False,
     "no page could be fetched: b.test answered HTTP 404 (2 URLs)"),
    ([], True, "no page could be fetched: robots.txt of a.test disallows the crawl (1 URL)"),
    ([], False, "no page could be fetched: no start URL was crawled (refused by the "
                "private-address guard, out of scope, or none given); see the crawler's log"),
])
def test_a_job_that_stored_no_answering_page_fails_and_says_why(database_url, redis_url, pages,
                                                               robots, error) -> None:
    job = make_job(database_url)
    store_pages(database_url, job, *pages)
    if robots:
        with psycopg.connect(database_url) as conn:
            conn.execute("INSERT INTO robots_decisions (job_id, url, host, decision, "
                         "robots_status) VALUES (%s, 'http://a.test/', 'a.test', "
                         "'disallowed', 200)", (job,))
    ext = extension(database_url, redis_url, job, "w1")
    ext._mark_running()
    asyncio.run(ext.spider_closed("finished"))
    got = row(database_url, job)
    assert (got["status"], got["reason"], got["error"]) == ("failed", "finished", error)


def test_one_answering_page_is_enough_to_finish(database_url, redis_url) -> None:
    job = make_job(database_url)
    store_pages(database_url, job, ("http://gone.test/", 0, DNS), ("http://b.test/", 301, None))
    ext = extension(database_url, redis_url, job, "w1")
    ext._mark_running()
    asyncio.run(ext.spider_closed("finished"))
    assert row(database_url, job)["status"] == "finished"


def test_a_schema_behind_the_code_fails_the_job_at_once_and_says_what_to_run(
        database_url, redis_url) -> None:
    # The code was updated, its migrations not applied: every row would be a dead letter.
    job = make_job(database_url)
    with psycopg.connect(database_url) as conn:
        newest = conn.execute("DELETE FROM schema_migrations WHERE version = "
                              "(SELECT max(version) FROM schema_migrations) "
                              "RETURNING name").fetchone()[0]
    ext = extension(database_url, redis_url, job, "w1")
    ext.crawler.engine = SimpleNamespace(scheduler=None)  # spider_opened reads the worker id
    with pytest.raises(CloseSpider) as closed:
        asyncio.run(ext.spider_opened())
    assert closed.value.reason == ENDED_REASON  # nothing fetched
    got = row(database_url, job)
    assert (got["status"], got["reason"]) == ("failed", "schema_outdated")
    assert newest in got["error"] and "crawlgraph db upgrade" in got["error"]
