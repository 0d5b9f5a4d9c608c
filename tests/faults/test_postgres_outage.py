"""Scenario 3: PostgreSQL crashed (`pg_ctl stop -m immediate`) during inserts, back 15 s later."""

from __future__ import annotations

import subprocess
import time

import pytest

from stack.credentials import ensure_credentials
from stack.postgres import pg_bindir
from tests.test_crawl_reliability import (
    _service,
    assert_complete,
    crawl_log,
    make_job,
    page_fetches,
    schedule,
    stored_pages,
    wait_finished,
    wait_pages,
    wait_running,
)

PAGES = 1500


def _crash(postgres) -> None:
    """Stop the cluster the way a crash does: no checkpoint, clients cut off."""
    result = subprocess.run(
        postgres._as_owner([str(pg_bindir(postgres.stack_settings) / "pg_ctl"), "-D",
                            str(postgres.datadir), "-m", "immediate", "-w", "-t", "30", "stop"]),
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.scenario(3, done="pg_ctl stop -m immediate during inserts; start it 15 s later",
                      checked="every page the server answered stored, each once; every link; "
                              "job finished; no page fetched twice")
def test_postgres_crash_during_inserts_loses_no_page(mock_server, scrapyd_url, database_url,
                                                     redis_url, test_stack) -> None:
    server = mock_server(pages=PAGES, seed=29, page_delay=0.005)
    job = make_job(database_url)
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                  CRAWLGRAPH_BATCH_SIZE=200, CRAWLGRAPH_FLUSH_SECONDS=0.2,
                  CRAWLGRAPH_BUFFER_MAX_ROWS=2000, CRAWLGRAPH_RETRY_MAX_SECONDS=1)
    wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 200)
    postgres = _service(test_stack, "postgres")
    _crash(postgres)
    try:
        time.sleep(15)
        fetched_while_down = len(server.requests("/p/"))
    finally:
        postgres.start(ensure_credentials(test_stack.settings.home))
    wait_finished(scrapyd_url, [sj], timeout=300)
    log = crawl_log(scrapyd_url, sj)
    answered = {server.origin + r.path for r in server.requests("/p/")}
    stored = stored_pages(database_url, job)
    assert len(stored) == len(set(stored))
    assert set(stored) == answered
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}
    # The crash did hit the inserts, and the crawl went on while PostgreSQL was down.
    assert "retrying" in log, "no write failed: the crash missed the inserts"
    assert fetched_while_down < PAGES, "the crawl was over before PostgreSQL came back"
