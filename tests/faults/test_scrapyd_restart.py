"""Scenario 5: scrapyd restarted (its crawler processes with it) while a job runs."""

from __future__ import annotations

import json
import os
import signal

import psutil
import psycopg
import pytest

from jobapi.services.recovery import VANISHED_REASON
from stack.credentials import ensure_credentials
from stack.supervise import CHILDREN
from tests.faults.helpers import ApiProcess, wait_for
from tests.faults.test_api_kill import api_env
from tests.test_crawl_reliability import (
    _scrapyd,
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
                   ("pending", "running") and r, 180, "the job to leave `running`")
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


@pytest.mark.scenario(5, done="kill -9 scrapyd with its crawler processes (a crash) while a "
                              "job crawls; start scrapyd and an API",
                      checked="the API's recovery fails the job with the reason (no process "
                              "left, no end recorded); its leases back in the queue")
def test_scrapyd_crash_is_recovered_by_the_api(mock_server, scrapyd_url, database_url,
                                               redis_url, test_stack, tmp_path) -> None:
    server = mock_server(pages=PAGES, seed=39, page_delay=0.01)
    job = make_job(database_url)
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url)
    base, _ = _scrapyd(scrapyd_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET scrapyd_jobs = %s WHERE id = %s",
                     (json.dumps([{"node": 0, "node_url": base, "jobid": sj}]), job))
    crawler_pid = wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 150)
    scrapyd = _service(test_stack, "scrapyd")
    scrapyd_pid = scrapyd.pid()
    group = os.getpgid(scrapyd_pid)
    assert group != os.getpgid(0) and os.getpgid(crawler_pid) == group
    os.killpg(group, signal.SIGKILL)
    dead = CHILDREN.pop(scrapyd_pid, None)  # the stack's handle on scrapyd: reap it
    if dead is not None:
        dead.wait(timeout=30)
    wait_for(lambda: not psutil.pid_exists(crawler_pid) or
             psutil.Process(crawler_pid).status() == psutil.STATUS_ZOMBIE, 30, "the crash")
    scrapyd.start(ensure_credentials(test_stack.settings.home))
    assert job_row(database_url, job)["status"] == "running"  # nobody recorded an end
    client, frontier = frontier_of(redis_url, job)
    try:
        assert frontier.stats()["leased"] > 0
        api = ApiProcess(api_env(database_url, redis_url, scrapyd_url, tmp_path),
                         tmp_path / "api.log").start()
        try:
            row = wait_for(lambda: (r := job_row(database_url, job))["status"] != "running"
                           and r, 180, "the API to recover the job")
        finally:
            api.stop()
        stats = frontier.stats()
    finally:
        client.close()
    assert row["status"] == "failed" and row["error"] == VANISHED_REASON, row
    assert len(stored_pages(database_url, job)) < PAGES
    assert stats["leased"] == 0 and stats["queued"] > 0, stats
