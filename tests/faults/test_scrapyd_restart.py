"""Scenario 5: scrapyd restarted (its crawler processes with it) while a job runs."""

from __future__ import annotations

import pytest

from jobapi.stack import ensure_credentials
from tests.faults.helpers import wait_for
from tests.test_crawl_reliability import (
    _service,
    frontier_of,
    job_row,
    make_job,
    schedule,
    scrapyd_jobs,
    stored_pages,
    wait_pages,
    wait_running,
)

PAGES = 1500


@pytest.mark.scenario(5, done="restart scrapyd (as `crawlgraph up` does) while a job crawls",
                      checked="job failed with the reason, not finished or cancelled; no lease "
                              "left held, the rest queued; scrapyd serves again")
def test_scrapyd_restart_fails_the_job_and_returns_its_leases(
        mock_server, scrapyd_url, database_url, redis_url, test_stack) -> None:
    server = mock_server(pages=PAGES, seed=37, page_delay=0.01)
    job = make_job(database_url)
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url)
    wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 150)
    scrapyd = _service(test_stack, "scrapyd")
    scrapyd.stop()
    scrapyd.start(ensure_credentials(test_stack.settings.home))
    listing = scrapyd_jobs(scrapyd_url)
    assert sj not in {j["id"] for j in listing["running"] + listing["pending"]}

    row = wait_for(lambda: (r := job_row(database_url, job))["status"] not in
                   ("pending", "running") and r, 60, "the job to leave `running`")
    stored = stored_pages(database_url, job)
    assert len(stored) < PAGES, "the crawl was over before the restart"
    assert row["status"] == "failed", row
    assert "shutdown" in row["error"], row
    client, frontier = frontier_of(redis_url, job)
    try:
        stats = frontier.stats()
    finally:
        client.close()
    # Every request the stopped worker held is back in the queue for a later run.
    assert stats["leased"] == 0 and stats["queued"] > 0, stats
