"""Scenario 29: Redis killed with `kill -9` mid-crawl, then started again from its AOF.

Unlike scenario 4 (a restart, which saves everything), a crash keeps only
what Redis had written to its append-only file. Redis writes each change to
it before it answers the client, and syncs it to disk every second
(`appendfsync everysec`): a killed process loses nothing the crawlers were
told was done (this test measures it), a crashed machine up to a second. The
frontier's writes are Lua scripts, each written whole, in order, so what
survives is a prefix of them:
a URL's lease lost with the last second sends it back to the queue (it is
fetched again), an acknowledgement lost sends its page back too, and a page's
discovered URLs are pushed before its acknowledgement, so no acknowledged
page's links can be lost. Checked against the site's own truth: the job
finishes with every reachable page and every link stored once; re-fetches
are allowed, and counted (what a crash costs, measured, printed).
"""

from __future__ import annotations

import os
import signal

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


@pytest.mark.slow
@pytest.mark.scenario(29, done="kill -9 Redis (frontier and shared throttle) mid-crawl, start "
                               "it again from its append-only file (fsync every second)",
                      checked="the job finishes; every reachable page and every link stored "
                              "once, none an error; pages fetched again counted")
def test_a_redis_crash_mid_crawl_loses_no_page(mock_server, scrapyd_url, database_url,
                                               redis_url, test_stack) -> None:
    server = mock_server(pages=PAGES, seed=29, page_delay=0.005)
    job = make_job(database_url)
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                  CRAWLGRAPH_RETRY_MAX_SECONDS=1)
    wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 300)
    redis_service = _service(test_stack, "redis")
    pid = redis_service.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    try:
        wait_for(lambda: redis_service.pid() is None, 10, "Redis to die")
    finally:
        redis_service.start(ensure_credentials(test_stack.settings.home))
    wait_finished(scrapyd_url, [sj], timeout=300)
    log = crawl_log(scrapyd_url, sj)
    assert "Redis unreachable" in log and "Redis reachable again" in log
    assert_complete(server, database_url, job)
    fetches = page_fetches(server)
    again = sum(n - 1 for n in fetches.values())
    print(f"\nredis crash: {len(fetches)} pages, {again} fetched again after the crash")
    assert again <= PAGES  # re-fetches are the cost; more than one crawl over would be a bug
