"""Scenario 2: SIGTERM a crawler worker while a batch is buffered."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from tests.faults.helpers import wait_for
from tests.test_crawl_reliability import (
    crawl_log,
    frontier_of,
    make_job,
    schedule,
    stored_pages,
    wait_finished,
    wait_running,
)


@pytest.mark.scenario(2, done="SIGTERM a worker holding an unwritten batch (flush after 1 h)",
                      checked="every page the server answered is stored after the exit; "
                              "no lease left held; the rest stays queued")
def test_sigterm_flushes_the_buffered_batch_before_exit(mock_server, scrapyd_url, database_url,
                                                        redis_url) -> None:
    server = mock_server(pages=400, seed=23, page_delay=0.05)
    job = make_job(database_url)
    # Rows stay in the buffer until the close: no size or age triggers a write.
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                  CRAWLGRAPH_FLUSH_SECONDS=3600, CRAWLGRAPH_BATCH_SIZE=100_000,
                  CRAWLGRAPH_BUFFER_MAX_ROWS=1_000_000)
    pid = wait_running(scrapyd_url, sj)
    wait_for(lambda: len(server.requests("/p/")) >= 40, 120, "40 pages to be fetched")
    # A worker that runs dry for a moment may flush early (a loaded machine): what
    # matters is that pages answered but not yet written are in the buffer now.
    written_before = len(stored_pages(database_url, job))
    assert len(server.requests("/p/")) - written_before >= 20, written_before
    os.kill(pid, signal.SIGTERM)
    wait_finished(scrapyd_url, [sj], timeout=90)
    log = crawl_log(scrapyd_url, sj, tail=25)
    assert "Spider closed (shutdown)" in log
    answered = {server.origin + r.path for r in server.requests("/p/")}
    stored = set(stored_pages(database_url, job))
    assert len(answered) >= 40
    assert stored == answered, (len(stored), len(answered), sorted(answered - stored)[:5])
    with psycopg.connect(database_url) as conn:
        links = conn.execute("SELECT count(*) FROM links WHERE job_id = %s", (job,)).fetchone()[0]
    assert links > 0
    client, frontier = frontier_of(redis_url, job)
    try:
        stats = frontier.stats()
    finally:
        client.close()
    assert stats["leased"] == 0 and stats["queued"] > 0, stats
