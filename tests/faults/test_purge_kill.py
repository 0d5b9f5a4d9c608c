"""Scenario 28: delete a large job while another job's crawl writes; `kill -9` the purger.

A finished job of 200,000 pages and 1,000,000 links (200,000 rows of packed
links, 1.2 million URLs) is deleted through the API.
A real `crawlgraph purge` process purges it while a writer stores a running
job's pages and links into the same tables the way the storage pipeline does
(batches in short transactions, each with a lock timeout). The purger is
killed with `kill -9` halfway and started again. Checked, from PostgreSQL's
own views sampled meanwhile: no purge transaction stayed open over half a
second (so none holds back vacuum or a lock for long; a purge whose batch
holds a whole table, `--batch 100000000`, takes 0.7 s here and fails it), the
writer never waited on a lock, the killed purger lost nothing it had
committed, and at the end every
row of the deleted job is gone and every row the writer committed is there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest

from tests.api_fixtures import login
from tests.faults.helpers import REPO, wait_for
from tests.retentiondata import fill_job, rows_of
from tests.test_api_jobs import insert_job

pytest_plugins = ["tests.api_fixtures"]

PAGES, LINKS_PER_PAGE = 200_000, 5
MAX_PURGE_TRANSACTION_S = 0.5
PURGER = "crawlgraph-purge"
WRITER = "crawl-writer"


def _purger(env: dict[str, str], log_path) -> subprocess.Popen:
    with log_path.open("a") as log:
        return subprocess.Popen([sys.executable, "-m", "cli", "purge", "--poll", "0.2"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


class Writer(threading.Thread):
    """Stores a running job's pages and links, 50 pages a transaction, until stopped."""

    def __init__(self, database_url: str, job_id: uuid.UUID) -> None:
        super().__init__(daemon=True)
        self.url, self.job_id = database_url, job_id
        self.stop, self.pages, self.errors = threading.Event(), 0, []

    def run(self) -> None:
        with psycopg.connect(self.url, application_name=WRITER) as conn:
            while not self.stop.is_set():
                start = self.pages
                urls = [f"https://b.example/p/{n}" for n in range(start, start + 50)]
                try:
                    with conn.transaction():
                        conn.execute("SET LOCAL lock_timeout = '500ms'")
                        with conn.cursor() as cur:
                            cur.executemany(
                                "INSERT INTO pages (job_id, url, final_url, status, fetched_at) "
                                "VALUES (%s, %s, %s, 200, now()) ON CONFLICT DO NOTHING",
                                [(self.job_id, u, u) for u in urls])
                            cur.executemany(
                                "INSERT INTO urls (job_id, id, url) "
                                "VALUES (%s, hashtextextended(%s, 0), %s) ON CONFLICT DO NOTHING",
                                [(self.job_id, u, u) for u in [*urls, "https://b.example/"]])
                            cur.executemany(
                                "INSERT INTO outlinks (job_id, source_id, target_ids, "
                                "counts, nofollow, anchor_texts) "
                                "VALUES (%s, hashtextextended(%s, 0), "
                                "int8send(hashtextextended('https://b.example/', 0)), "
                                "int4send(1), '\\x00', '{\"\"}') ON CONFLICT DO NOTHING",
                                [(self.job_id, u) for u in urls])
                except psycopg.Error as exc:
                    self.errors.append(repr(exc))
                    continue
                self.pages += len(urls)
                time.sleep(0.01)


class Sampler(threading.Thread):
    """Samples the longest open purge transaction and any lock the writer waits on."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.url = database_url
        self.stop, self.longest, self.writer_waits = threading.Event(), 0.0, []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                (open_s,) = conn.execute(
                    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)"
                    " FROM pg_stat_activity WHERE application_name = %s "
                    "AND xact_start IS NOT NULL", (PURGER,)).fetchone()
                self.longest = max(self.longest, float(open_s))
                self.writer_waits += conn.execute(
                    "SELECT l.locktype, l.mode FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE a.application_name = %s AND NOT l.granted",
                    (WRITER,)).fetchall()
                time.sleep(0.02)


def _sessions(database_url: str, application_name: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchone()[0]


def _links(database_url: str, job_id: uuid.UUID) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM links WHERE job_id = %s",
                            (job_id,)).fetchone()[0]


@pytest.mark.slow
@pytest.mark.scenario(28, done="delete a job of 1,000,000 links while another job's crawl "
                               "writes into the same tables; kill -9 the purger halfway, "
                               "start it again",
                      checked="no purge transaction open over 0.5 s (sampled); the writer never "
                              "waited on a lock; nothing committed came back after the kill; "
                              "every row of the deleted job gone, every row written kept")
def test_a_purge_never_holds_up_a_crawl_and_survives_its_kill(client, users, database_url,
                                                              tmp_path):
    deleted = insert_job(database_url, users["alice"], status="finished")
    running = insert_job(database_url, users["alice"], status="running")
    with psycopg.connect(database_url, autocommit=True) as conn:
        fill_job(conn, deleted, pages=PAGES, links_per_page=LINKS_PER_PAGE)
    answer = client.delete(f"/api/v1/jobs/{deleted}", headers=login(client, "alice"))
    assert answer.status_code == 202, answer.text

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CRAWLGRAPH_", "DATABASE_URL", "REDIS_URL", "SCRAPYD_URLS"))}
    env.update(CRAWLGRAPH_HOME=str(tmp_path), DATABASE_URL=database_url, PGAPPNAME=PURGER)
    log_path = tmp_path / "purger.log"
    writer, sampler = Writer(database_url, running), Sampler(database_url)
    writer.start()
    sampler.start()
    started: list[subprocess.Popen] = []
    try:
        started.append(_purger(env, log_path))
        total = PAGES * LINKS_PER_PAGE
        wait_for(lambda: _links(database_url, deleted) < total // 2, 120,
                 "the purger to delete half of the job's links")
        started[0].send_signal(signal.SIGKILL)
        started[0].wait(10)
        # Its server sessions end when PostgreSQL notices: a COMMIT it had sent may land
        # just after the kill. Once they are gone, what is deleted stays deleted.
        wait_for(lambda: not _sessions(database_url, PURGER), 30,
                 "the killed purger's sessions to end")
        at_kill = _links(database_url, deleted)
        time.sleep(0.5)
        assert _links(database_url, deleted) == at_kill  # committed batches stay deleted

        started.append(_purger(env, log_path))

        def gone() -> bool:
            with psycopg.connect(database_url) as conn:
                return conn.execute("SELECT count(*) FROM jobs WHERE id = %s",
                                    (deleted,)).fetchone()[0] == 0
        wait_for(gone, 180, "the restarted purger to finish the job")
    finally:
        writer.stop.set()
        sampler.stop.set()
        writer.join(10)
        sampler.join(10)
        for process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
    log = log_path.read_text()
    assert sampler.longest < MAX_PURGE_TRANSACTION_S, (sampler.longest, log[-2000:])
    assert sampler.writer_waits == [] and writer.errors == [], (sampler.writer_waits,
                                                                 writer.errors[:3])
    assert writer.pages > 0
    with psycopg.connect(database_url) as conn:
        assert not any(rows_of(conn, deleted).values())
        left = rows_of(conn, running)
    assert left["pages"] == left["links"] == writer.pages
    print(f"\npurge: longest purge transaction {sampler.longest:.3f} s; the writer stored "
          f"{writer.pages} pages meanwhile, waiting on no lock")
