"""Scenario 1: `kill -9` one of two crawler workers mid-crawl, then restart it.

Scenario 18: scrapyd starts one more worker of a job that has finished (its slots
were full, or a replacement came too late): it fetches and stores nothing.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import psycopg
import pytest

from crawler.frontier import ENDED_REASON
from tests.test_crawl_reliability import (
    assert_complete,
    crawl_log,
    leased_urls,
    make_job,
    schedule,
    stored_links,
    stored_pages,
    wait_finished,
    wait_pages,
    wait_running,
)

PAGES = 1200


@pytest.mark.slow
@pytest.mark.scenario(1, done="kill -9 one of two workers mid-crawl, start a new one",
                      checked="every reachable page and link stored once; the dead worker's "
                              "leases fetched again; job finished")
def test_killed_worker_of_two_is_replaced_and_every_page_stored_once(
        mock_server, scrapyd_url, database_url, redis_url) -> None:
    server = mock_server(pages=PAGES, seed=21, page_delay=0.01)
    job = make_job(database_url, workers=2)
    settings = {"CRAWLGRAPH_LEASE_SECONDS": 4}
    first, second = (schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                              **settings) for _ in range(2))
    victim = wait_running(scrapyd_url, first)
    wait_running(scrapyd_url, second)
    wait_pages(database_url, job, 200)
    os.kill(victim, signal.SIGKILL)
    # Right after the kill the victim's leases are all still held (they expire after
    # CRAWLGRAPH_LEASE_SECONDS); the survivor's current leases are in this set too.
    held_at_kill = leased_urls(redis_url, job)
    stored_at_kill = len(stored_pages(database_url, job))
    assert held_at_kill, "no lease was held at the kill"
    assert stored_at_kill < PAGES, "the crawl ended before the kill"
    replacement = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                           **settings)
    wait_finished(scrapyd_url, [first, second, replacement], timeout=300)
    logs = [crawl_log(scrapyd_url, sj, tail=10) for sj in (second, replacement)]
    assert_complete(server, database_url, job)
    pages = stored_pages(database_url, job)
    assert len(pages) == len(set(pages)) == PAGES
    # The dead worker's leases expired and a live worker put them back in the queue.
    assert any("requeued" in log for log in logs)
    # At-least-once fetch: only requests leased at the kill may have been fetched twice.
    fetches = Counter(r.path for r in server.requests("/p/"))
    repeated = {server.origin + path for path, n in fetches.items() if n > 1}
    assert repeated <= held_at_kill, sorted(repeated - held_at_kill)[:5]


def whole_row(database_url: str, job_id: str) -> dict:
    """Every column of the job's row."""
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT to_jsonb(jobs) FROM jobs WHERE id = %s",
                            (job_id,)).fetchone()[0]


@pytest.mark.slow
@pytest.mark.scenario(18, done="start one more worker (scrapyd) of a finished job",
                      checked="a worker that starts after its job ended fetches nothing, "
                              "stores nothing, leaves the job row as it was")
def test_a_worker_that_starts_after_its_job_ended_fetches_nothing(
        mock_server, scrapyd_url, database_url, redis_url) -> None:
    server = mock_server(pages=200, seed=23)
    job = make_job(database_url)
    first = schedule(scrapyd_url, job, server.start_url, database_url, redis_url)
    wait_finished(scrapyd_url, [first], timeout=240)
    crawl_log(scrapyd_url, first, tail=5)
    assert_complete(server, database_url, job)
    fetched = len(server.requests())
    pages, links = sorted(stored_pages(database_url, job)), stored_links(database_url, job)
    row = whole_row(database_url, job)

    # The same process again: it would seed the job from its start URL once more.
    late = schedule(scrapyd_url, job, server.start_url, database_url, redis_url)
    wait_finished(scrapyd_url, [late], timeout=120)
    log = crawl_log(scrapyd_url, late, tail=20)
    assert [r.path for r in server.requests()[fetched:]] == []
    assert sorted(stored_pages(database_url, job)) == pages
    assert stored_links(database_url, job) == links
    assert whole_row(database_url, job) == row
    assert f"Spider closed ({ENDED_REASON})" in log
