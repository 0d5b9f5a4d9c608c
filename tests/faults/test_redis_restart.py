"""Scenario 4: Redis restarted mid-crawl, with the project's full middleware stack."""

from __future__ import annotations

import time

import pytest

from stack.credentials import ensure_credentials
from tests.test_crawl_reliability import (
    _service,
    assert_complete,
    crawl_log,
    make_job,
    page_fetches,
    schedule,
    wait_finished,
    wait_pages,
    wait_running,
)

PAGES = 1500


@pytest.mark.slow
@pytest.mark.scenario(4, done="restart Redis (frontier and shared throttle) mid-crawl, "
                              "project middlewares on",
                      checked="the crawl resumes and completes: every page and link stored "
                              "once, none an error, each fetched once; job finished")
def test_redis_restart_mid_crawl_resumes_and_completes(mock_server, scrapyd_url, database_url,
                                                       redis_url, test_stack) -> None:
    server = mock_server(pages=PAGES, seed=31, page_delay=0.005)
    job = make_job(database_url)
    # Unlike tests/test_crawl_reliability.py, the project's downloader middlewares stay
    # on: the per-host throttle keeps its state in the same Redis as the frontier.
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                  CRAWLGRAPH_RETRY_MAX_SECONDS=1)
    wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 300)
    redis_service = _service(test_stack, "redis")
    redis_service.stop()
    try:
        time.sleep(3)
    finally:
        redis_service.start(ensure_credentials(test_stack.settings.home))
    wait_finished(scrapyd_url, [sj], timeout=300)
    log = crawl_log(scrapyd_url, sj)
    assert "Redis unreachable" in log and "Redis reachable again" in log
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}
