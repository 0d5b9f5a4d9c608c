"""Scenario 23: two scheduler processes over one PostgreSQL, killed and restarted.

A schedule fires every two seconds (a six-field cron expression) with
catch-up `latest`; its jobs are real jobs on the session's scrapyd, crawling
a three-page site on the mock server. Two `scheduler` processes run at once;
one is killed with `kill -9` and started again while the other goes on; then
both are killed, none runs for several slots, and both start again. The jobs
table is then read: no slot has more than one job; every slot from the first
to the last was handled once, except the slots of the time when no scheduler
ran, which the one run after it covers (its `missed` count) and fires once.

The scheduler processes are this module run as a program (`python -m
tests.faults.test_schedule_once`): `crawlgraph scheduler` with the crawlers
pointed at the test's database, as tests/test_cli_jobs.py does for the API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest

from core.settings import Settings
from tests.api_fixtures import login, make_client
from tests.faults.helpers import REPO, wait_for

pytest_plugins = ["tests.api_fixtures"]

PERIOD = timedelta(seconds=2)
GRACE_SECONDS = 1.0
DOWNTIME_SECONDS = 7.0


def main() -> None:
    """A scheduler process whose crawlers write into the database it fires jobs in."""
    from jobapi.services.schedules_loop import run_scheduler

    settings = Settings.from_env()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s scheduler %(message)s")
    asyncio.run(run_scheduler(settings, poll_seconds=0.2, grace_seconds=GRACE_SECONDS,
                              crawler_overrides={
                                  "CRAWLGRAPH_DATABASE_URL": settings.database_url,
                                  "CRAWLGRAPH_REDIS_URL": settings.redis_url}))


class Schedulers:
    """Scheduler processes started with one environment; every one is stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.started: list[subprocess.Popen] = []

    def start(self, name: str) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as log:  # the child keeps its own copy
            proc = subprocess.Popen([sys.executable, "-m", "tests.faults.test_schedule_once"],
                                    cwd=REPO, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _add_schedule(api_settings: Settings, start_url: str) -> str:
    settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
    with make_client(settings) as client:
        response = client.post("/api/v1/schedules", headers=login(client, "alice"), json={
            "name": "every two seconds", "cron": "*/2 * * * * *", "overlap": "queue",
            "catchup": "latest", "job": {"start_urls": [start_url], "max_pages": 3}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _runs(database_url: str, schedule_id: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT slot, outcome, job_id, missed, handled_at FROM schedule_runs "
                            "WHERE schedule_id = %s ORDER BY slot", (schedule_id,)).fetchall()


def _wait_runs(database_url: str, schedule_id: str, count: int, what: str) -> list[tuple]:
    return wait_for(lambda: (r := _runs(database_url, schedule_id)) and len(r) >= count and r,
                    60 + count * PERIOD.total_seconds(), what)


def _cancel_crawls(database_url: str, scrapyd_url: str, schedule_id: str) -> None:
    """Stop the crawls the schedule started that are still queued or running on scrapyd."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT scrapyd_jobs FROM jobs WHERE schedule_id = %s",
                            (schedule_id,)).fetchall()
    url = httpx.URL(scrapyd_url)
    with httpx.Client(base_url=url.copy_with(username=None, password=None),
                      auth=(url.username, url.password), timeout=10) as client:
        for (refs,) in rows:
            for ref in refs or []:
                client.post("/cancel.json", data={"project": "crawlgraph", "job": ref["jobid"]})


@pytest.mark.slow
@pytest.mark.scenario(23, done="two scheduler processes at once, a schedule every 2 s (catch-up "
                               "latest, real jobs on scrapyd); kill -9 one and restart it; "
                               "kill -9 both, none for 7 s, restart both",
                      checked="jobs counted per slot from the jobs table: none has two; every "
                              "slot handled once; the slots of the downtime covered by one "
                              "run that fires once (latest)")
def test_each_slot_fires_once_across_schedulers_killed_and_restarted(
        api_settings, users, database_url, redis_url, scrapyd_url, mock_server, tmp_path):
    site = mock_server(pages=3)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CRAWLGRAPH_", "DATABASE_URL", "REDIS_URL", "SCRAPYD_URLS"))}
    env.update(CRAWLGRAPH_HOME=str(tmp_path), DATABASE_URL=database_url, REDIS_URL=redis_url,
               SCRAPYD_URLS=scrapyd_url, ALLOW_PRIVATE_NETWORKS="1",
               SCRAPY_SETTINGS_MODULE="tests.spiders.settings")
    schedulers = Schedulers(env, tmp_path)
    schedule_id = None
    try:
        a, b = schedulers.start("a"), schedulers.start("b")
        wait_for(lambda: all("scheduler started" in (tmp_path / f"{n}.log").read_text()
                             for n in ("a", "b")), 60, "both schedulers to start")
        # Made once both run, so that its first slot is on time.
        schedule_id = _add_schedule(api_settings, site.start_url)
        _wait_runs(database_url, schedule_id, 4, "4 slots fired by two schedulers")
        schedulers.kill(a)
        n = len(_runs(database_url, schedule_id))
        _wait_runs(database_url, schedule_id, n + 3, "3 slots fired by the one left")
        a = schedulers.start("a-again")
        n = len(_runs(database_url, schedule_id))
        _wait_runs(database_url, schedule_id, n + 3, "3 slots fired by both again")
        schedulers.kill(a)
        schedulers.kill(b)
        down_at = datetime.now().astimezone()
        time.sleep(DOWNTIME_SECONDS)
        up_at = datetime.now().astimezone()
        schedulers.start("a-third"), schedulers.start("b-again")
        n = len(_runs(database_url, schedule_id))
        _wait_runs(database_url, schedule_id, n + 4, "4 slots fired after the downtime")
    finally:
        schedulers.stop_all()
        if schedule_id is not None:
            _cancel_crawls(database_url, scrapyd_url, schedule_id)

    with psycopg.connect(database_url) as conn:
        per_slot = conn.execute("SELECT schedule_slot, count(*) FROM jobs WHERE schedule_id = %s "
                                "GROUP BY 1 ORDER BY 1", (schedule_id,)).fetchall()
    twice = [(slot, count) for slot, count in per_slot if count > 1]
    assert not twice, f"slots fired more than once: {twice}"
    runs = _runs(database_url, schedule_id)
    assert {r[0]: r[2] for r in runs if r[2] is not None} == \
        {slot: job for slot, job in _jobs_by_slot(database_url, schedule_id).items()}

    # Every slot from the first to the last is a run, or covered by the run after it.
    handled = {r[0] for r in runs}
    expected = []
    slot = runs[0][0]
    while slot <= runs[-1][0]:
        expected.append(slot)
        slot += PERIOD
    assert handled <= set(expected)
    assert len(expected) == len(runs) + sum(r[3] for r in runs)
    for i, run in enumerate(runs):
        covered = [s for s in expected if runs[i - 1][0] < s < run[0]] if i else []
        assert len(covered) == run[3], (run, covered)

    # The downtime: exactly one run covers its slots, handled after the restart, and fires.
    gaps = [r for r in runs if r[3] > 0]
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    assert gap[3] >= DOWNTIME_SECONDS // PERIOD.total_seconds() - 1
    assert gap[0] > down_at and gap[4] >= up_at
    assert gap[1] in ("submitted", "failed") and gap[2] is not None
    assert sum(1 for r in runs if r[1] == "submitted") >= len(runs) - 1


def _jobs_by_slot(database_url: str, schedule_id: str) -> dict:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT schedule_slot, id FROM jobs WHERE schedule_id = %s",
                                 (schedule_id,)).fetchall())


if __name__ == "__main__":
    main()
