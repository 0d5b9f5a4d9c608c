"""Scenarios 4 and 29: Redis restarted, then killed, mid-crawl, the project's middlewares on.

Unlike tests/test_crawl_reliability.py, the project's downloader middlewares
stay on: the per-host throttle keeps its state in the same Redis as the
frontier. Scenario 4 restarts Redis (a stop saves everything). Scenario 29
kills it with `kill -9`: a crash keeps only what Redis had written to its
append-only file. Redis writes each change to it before it answers the
client, and syncs it to disk every second (`appendfsync everysec`), so a
killed process loses nothing the crawlers were told was done (measured
here), and a crashed machine can lose up to a second. The frontier's writes
are Lua scripts, each written whole and in order, so what survives is a
prefix of them: a lost lease or acknowledgement sends its page back to the
queue (fetched again), and a page's discovered URLs are pushed before its
acknowledgement, so no acknowledged page's links are lost. Both checked
against the site's own truth.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest

from stack.credentials import ensure_credentials
from tests.faults.helpers import wait_for
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


def crawl_through(fault: Callable[[object], None], mock_server, scrapyd_url, database_url,
                  redis_url, test_stack, seed: int) -> Counter:
    """Crawl a site of PAGES pages, do `fault` to Redis after 300, start it again; the job
    finishes complete. Returns how often each page was fetched."""
    server = mock_server(pages=PAGES, seed=seed, page_delay=0.005)
    job = make_job(database_url)
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                  CRAWLGRAPH_RETRY_MAX_SECONDS=1)
    wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 300)
    redis_service = _service(test_stack, "redis")
    try:
        fault(redis_service)
    finally:
        redis_service.start(ensure_credentials(test_stack.settings.home))
    wait_finished(scrapyd_url, [sj], timeout=300)
    log = crawl_log(scrapyd_url, sj)
    assert "Redis unreachable" in log and "Redis reachable again" in log
    assert_complete(server, database_url, job)
    return page_fetches(server)


def _stopped_for_3_s(redis_service) -> None:
    redis_service.stop()
    time.sleep(3)


def _killed(redis_service) -> None:
    pid = redis_service.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: redis_service.pid() is None, 10, "Redis to die")


@pytest.mark.slow
@pytest.mark.scenario(4, done="restart Redis (frontier and shared throttle) mid-crawl, "
                              "project middlewares on",
                      checked="the crawl resumes and completes: every page and link stored "
                              "once, none an error, each fetched once; job finished")
def test_redis_restart_mid_crawl_resumes_and_completes(mock_server, scrapyd_url, database_url,
                                                       redis_url, test_stack) -> None:
    fetches = crawl_through(_stopped_for_3_s, mock_server, scrapyd_url, database_url,
                            redis_url, test_stack, seed=31)
    assert set(fetches.values()) == {1}


@pytest.mark.slow
@pytest.mark.scenario(29, done="kill -9 Redis (frontier and shared throttle) mid-crawl, start "
                               "it again from its append-only file (fsync every second)",
                      checked="the job finishes; every reachable page and every link stored "
                              "once, none an error; pages fetched again counted")
def test_a_redis_crash_mid_crawl_loses_no_page(mock_server, scrapyd_url, database_url,
                                               redis_url, test_stack) -> None:
    fetches = crawl_through(_killed, mock_server, scrapyd_url, database_url, redis_url,
                            test_stack, seed=29)
    again = sum(n - 1 for n in fetches.values())
    print(f"\nredis crash: {len(fetches)} pages, {again} fetched again after the crash")
    # Re-fetches are what a crash may cost; more than a whole second crawl would be a bug.
    assert again <= PAGES
