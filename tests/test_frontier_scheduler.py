"""The Redis scheduler through a real crawl (subprocess, mock server, Redis, PostgreSQL).

One worker crawls a seeded job with the storage pipeline on: every page is
fetched once and stored once, every lease is acknowledged, and the finished
job's frontier is cleared. A worker that starts after its job ended (in the
database, or only in the frontier yet) fetches and stores nothing. The scrapyd
scenarios (kill -9, several workers, outages, pause) are in
`tests/test_crawl_reliability.py`.
"""

from __future__ import annotations

import psycopg
import redis

from crawler.frontier import ENDED_REASON
from tests.crawlrun import run_crawl
from tests.test_crawl_reliability import (
    assert_complete,
    make_job,
    page_fetches,
    stored_links,
    stored_pages,
)
from tests.test_frontier_queue import BlockingFrontier

FOLLOW = "tests.spiders.follow.FollowSpider"


def worker_settings(database_url: str, redis_url: str) -> dict[str, object]:
    return {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
            "ROBOTSTXT_OBEY": False, "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def test_every_page_is_fetched_stored_and_acknowledged_once(mock_server, database_url,
                                                            redis_url) -> None:
    server = mock_server(pages=60, seed=3)
    job = make_job(database_url)
    frontier = BlockingFrontier(redis_url, job)
    assert frontier.seed([server.start_url]) == 1
    result = run_crawl(FOLLOW, {"job_id": job, "start_urls": server.start_url},
                       worker_settings(database_url, redis_url), stack=True)
    assert result.reason == "finished", result.log[-3000:]
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}
    stats = result.stats
    assert stats["frontier/dequeued"] == stats["frontier/acked"] == 60
    # What this worker leased in all, and what the job has leased as of the last refresh.
    assert stats["frontier/leased_total"] == 60
    assert stats["frontier/leased"] == 0
    client = redis.Redis.from_url(redis_url)
    try:
        # Nothing of the finished job is left but its tombstone.
        assert list(client.scan_iter(match=frontier.keys.pattern)) == [
            frontier.keys.ended.encode()]
    finally:
        client.close()


def _stored(database_url: str, job_id: str) -> tuple[int, int]:
    """(pages, links) stored for the job."""
    return len(stored_pages(database_url, job_id)), len(stored_links(database_url, job_id))


def _job_row(database_url: str, job_id: str) -> tuple:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT status, close_reason, stats, finished_at, updated_at "
                            "FROM jobs WHERE id = %s", (job_id,)).fetchone()


def test_a_worker_starting_after_its_job_finished_fetches_nothing(mock_server, database_url,
                                                                  redis_url) -> None:
    server = mock_server(pages=30, seed=4)
    job = make_job(database_url)
    BlockingFrontier(redis_url, job).seed([server.start_url])
    args, settings = {"job_id": job, "start_urls": server.start_url}, worker_settings(
        database_url, redis_url)
    first = run_crawl(FOLLOW, args, settings, stack=True)
    assert first.reason == "finished", first.log[-3000:]
    assert _job_row(database_url, job)[0] == "finished"
    fetched, stored, row = len(server.requests()), _stored(database_url, job), _job_row(
        database_url, job)

    # scrapyd starts one more process of the job (a slot came free, a replacement):
    # it re-seeds from its start URLs, and without a guard crawls the whole site again.
    late = run_crawl(FOLLOW, args, settings, stack=True)
    assert [r.path for r in server.requests()[fetched:]] == [], late.log[-3000:]
    assert _stored(database_url, job) == stored
    assert _job_row(database_url, job) == row
    assert late.reason == ENDED_REASON
    assert "is finished already; this worker closes without crawling" in late.log


def test_a_worker_whose_job_ends_as_it_starts_fetches_nothing(mock_server, database_url,
                                                              redis_url) -> None:
    """The worker opens while the job's row is still running, its frontier just ended."""
    server = mock_server(pages=30, seed=4)
    job = make_job(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET status = 'running' WHERE id = %s", (job,))
    frontier = BlockingFrontier(redis_url, job)
    frontier.seed([server.start_url])
    assert frontier.end(require_empty=False)  # the last other worker finished it
    late = run_crawl(FOLLOW, {"job_id": job, "start_urls": server.start_url},
                     worker_settings(database_url, redis_url), stack=True)
    assert [r.path for r in server.requests()] == [], late.log[-3000:]
    assert _stored(database_url, job) == (0, 0)
    assert late.reason == ENDED_REASON
    assert "has ended (finished or cancelled); this worker fetches nothing more" in late.log
