"""Crawls through scrapyd on the shared frontier: completeness, kill -9, several
workers, PostgreSQL stopped, Redis restarted (real services and the mock server).

Each crawl is a `follow` spider scheduled on the session's scrapyd with this
test's database and Redis, on a generated site served by `tests.mockserver`;
the server's request log is the ground truth for "fetched once".
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from urllib.parse import urlencode, urlsplit

import httpx
import psycopg
import pytest
import redis

from stack.credentials import ensure_credentials
from tests.spiders.settings import JOB_SETTING as FOLLOW_SETTING
from tests.test_frontier_queue import BlockingFrontier

pytestmark = pytest.mark.slow

PAGES = 2000


# --- helpers ---------------------------------------------------------------------


def _scrapyd(scrapyd_url: str) -> tuple[str, httpx.BasicAuth]:
    parts = urlsplit(scrapyd_url)
    base = parts._replace(netloc=f"{parts.hostname}:{parts.port}").geturl()
    return base, httpx.BasicAuth(parts.username or "", parts.password or "")


def make_job(database_url: str, workers: int = 1) -> str:
    job_id = str(uuid.uuid4())
    with psycopg.connect(database_url) as conn:
        user = conn.execute(
            "INSERT INTO users (username, password_hash) VALUES (%s, 'x') RETURNING id",
            (f"t{job_id[:8]}",),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO jobs (id, owner_id, spider, workers) VALUES (%s, %s, 'follow', %s)",
            (job_id, user, workers),
        )
    return job_id


def schedule(scrapyd_url: str, job_id: str, start_url: str, database_url: str, redis_url: str,
             **settings: object) -> str:
    """Start one `follow` worker for `job_id` on scrapyd; return scrapyd's job id."""
    base, auth = _scrapyd(scrapyd_url)
    all_settings = {
        "CRAWLGRAPH_DATABASE_URL": database_url,
        "CRAWLGRAPH_REDIS_URL": redis_url,
        "CRAWLGRAPH_STATS_INTERVAL": 1,
        "ROBOTSTXT_OBEY": False,
        "LOG_LEVEL": "INFO",
        **settings,
    }
    data = [("project", "crawlgraph"), ("spider", "follow"), ("job_id", job_id),
            ("start_urls", start_url), ("setting", FOLLOW_SETTING)]
    data += [("setting", f"{k}={v}") for k, v in all_settings.items()]
    response = httpx.post(f"{base}/schedule.json", content=urlencode(data), auth=auth,
                          headers={"Content-Type": "application/x-www-form-urlencoded"},
                          timeout=30)
    body = response.json()
    assert body.get("status") == "ok", body
    return body["jobid"]


def scrapyd_jobs(scrapyd_url: str) -> dict:
    base, auth = _scrapyd(scrapyd_url)
    body = httpx.get(f"{base}/listjobs.json", params={"project": "crawlgraph"}, auth=auth,
                     timeout=30).json()
    assert body.get("status") == "ok", body
    return body


def wait_running(scrapyd_url: str, scrapyd_job: str, timeout: float = 60) -> int:
    """Wait until scrapyd runs the process; return its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in scrapyd_jobs(scrapyd_url)["running"]:
            if job["id"] == scrapyd_job and job.get("pid"):
                return int(job["pid"])
        time.sleep(0.2)
    raise AssertionError(f"scrapyd job {scrapyd_job} did not start")


def crawl_log(scrapyd_url: str, scrapyd_job: str, tail: int = 60) -> str:
    """The last lines of a crawler process's log (printed, so a failing test shows it)."""
    base, auth = _scrapyd(scrapyd_url)
    response = httpx.get(f"{base}/logs/crawlgraph/follow/{scrapyd_job}.log", auth=auth,
                         timeout=30)
    text = "\n".join(response.text.splitlines()[-tail:])
    print(f"--- log of {scrapyd_job} ---\n{text}")
    return response.text


def wait_finished(scrapyd_url: str, scrapyd_jobs_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = {job["id"] for job in scrapyd_jobs(scrapyd_url)["finished"]}
        if set(scrapyd_jobs_ids) <= finished:
            return
        time.sleep(0.5)
    raise AssertionError(f"crawler processes {scrapyd_jobs_ids} did not finish in {timeout} s")


def stored_pages(database_url: str, job_id: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [r[0] for r in conn.execute("SELECT url FROM pages WHERE job_id = %s", (job_id,))]


def stored_links(database_url: str, job_id: str) -> set[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        return set(conn.execute("SELECT source_url, target_url FROM link_urls WHERE job_id = %s",
                                (job_id,)).fetchall())


def job_row(database_url: str, job_id: str) -> dict:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute("SELECT status, close_reason, stats, error FROM jobs WHERE id = %s",
                           (job_id,))
        status, reason, stats, error = cur.fetchone()
    return {"status": status, "close_reason": reason, "stats": stats, "error": error}


def page_fetches(server) -> Counter:
    return Counter(r.path for r in server.requests("/p/"))


def assert_complete(server, database_url: str, job_id: str) -> None:
    """Every reachable page stored once, every link stored once, the job finished."""
    origin = server.origin
    pages = stored_pages(database_url, job_id)
    assert len(pages) == len(set(pages))  # the primary key guarantees it; check anyway
    assert set(pages) == server.site.reachable(origin)
    assert stored_links(database_url, job_id) == server.site.link_set(origin)
    row = job_row(database_url, job_id)
    assert row["status"] == "finished", row
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0


def frontier_of(redis_url: str, job_id: str) -> tuple[redis.Redis, BlockingFrontier]:
    """A client to look at the job's keys, and the job's frontier."""
    client = redis.Redis.from_url(redis_url)
    return client, BlockingFrontier(redis_url, job_id)


# --- scenarios -------------------------------------------------------------------


def test_crawl_stores_every_page_and_link_once(mock_server, scrapyd_url, database_url,
                                               redis_url) -> None:
    server = mock_server(pages=PAGES, seed=3)
    job = make_job(database_url)
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url)
    wait_finished(scrapyd_url, [sj], timeout=240)
    log = crawl_log(scrapyd_url, sj)
    assert "ERROR" not in log
    assert_complete(server, database_url, job)
    fetched = page_fetches(server)
    assert set(fetched.values()) == {1}, fetched.most_common(3)
    row = job_row(database_url, job)
    assert row["close_reason"] == "finished"
    assert row["stats"]["pages"] == PAGES and row["stats"]["rows_stored"] > PAGES
    # The job's frontier is cleared when it finishes, but for the tombstone that
    # keeps a worker starting late from crawling it again.
    client, frontier = frontier_of(redis_url, job)
    assert list(client.scan_iter(match=frontier.keys.pattern)) == [frontier.keys.ended.encode()]
    client.close()


def wait_pages(database_url: str, job_id: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(stored_pages(database_url, job_id)) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} pages stored after {timeout} s")


def leased_urls(redis_url: str, job_id: str) -> set[str]:
    """The URLs of every request currently leased in the job's frontier."""
    from crawler.frontier.serialize import request_from_bytes

    client, frontier = frontier_of(redis_url, job_id)
    try:
        members = client.zrange(frontier.keys.leases, 0, -1)
        payloads = client.hmget(frontier.keys.requests, members) if members else []
    finally:
        client.close()
    return {request_from_bytes(p).url for p in payloads if p is not None}


def test_killed_worker_leases_are_fetched_again(mock_server, scrapyd_url, database_url,
                                                redis_url) -> None:
    server = mock_server(pages=1000, seed=5, page_delay=0.01)
    job = make_job(database_url)
    settings = {"CRAWLGRAPH_LEASE_SECONDS": 4}
    first = schedule(scrapyd_url, job, server.start_url, database_url, redis_url, **settings)
    pid = wait_running(scrapyd_url, first)
    wait_pages(database_url, job, 200)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    orphans = leased_urls(redis_url, job)
    assert orphans, "the killed worker held no lease"
    wait_finished(scrapyd_url, [first], timeout=60)
    second = schedule(scrapyd_url, job, server.start_url, database_url, redis_url, **settings)
    wait_finished(scrapyd_url, [second], timeout=240)
    crawl_log(scrapyd_url, second)
    assert_complete(server, database_url, job)
    # Every URL the dead worker had leased was fetched (again) after it died.
    after = {server.origin + r.path for r in server.requests("/p/") if r.time >= killed_at}
    assert orphans <= after, sorted(orphans - after)[:5]
    assert "requeued" in crawl_log(scrapyd_url, second, tail=0)


# A worker holds at most CONCURRENT_REQUESTS requests in its downloader and PREFETCH
# more in its local queue.
SHARED_SETTINGS = {"CONCURRENT_REQUESTS": 8, "CRAWLGRAPH_PREFETCH": 8}
HELD_PER_WORKER = 16
# robots.txt is held until every worker asked for it (a barrier, bounded in time);
# their robots.txt requests must not time out meanwhile, and only the crawl's own
# latencies may set the delay (not the held robots.txt's).
ROBOTS_HOLD_TIMEOUT = 120
HELD_ROBOTS_SETTINGS = {"ROBOTSTXT_OBEY": True, "CRAWLGRAPH_THROTTLE_ADAPTIVE": False,
                        "DOWNLOAD_TIMEOUT": ROBOTS_HOLD_TIMEOUT + 30}


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_the_job_and_fetch_each_url_once(mock_server, scrapyd_url, database_url,
                                                       redis_url, workers: int) -> None:
    """Every worker takes part by construction, not by timing.

    The frontier is seeded with more pages than the other workers can hold, and the
    server answers robots.txt (which a worker reads before its first page) only once
    every worker has asked for it: no page is fetched before the last worker to start
    has a page of its own.
    """
    server = mock_server(pages=PAGES, seed=7, robots_hold=workers,
                         robots_hold_timeout=ROBOTS_HOLD_TIMEOUT)
    job = make_job(database_url, workers=workers)
    pages = sorted(server.site.page_urls(server.origin) - {server.start_url})
    seeds = [server.start_url, *pages[:(workers - 1) * HELD_PER_WORKER]]
    assert BlockingFrontier(redis_url, job).seed(seeds) == len(seeds)
    ids = [schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                    **SHARED_SETTINGS, **HELD_ROBOTS_SETTINGS)
           for _ in range(workers)]
    wait_finished(scrapyd_url, ids, timeout=ROBOTS_HOLD_TIMEOUT + 300)
    logs = [crawl_log(scrapyd_url, sj, tail=15) for sj in ids]
    assert len(server.paths("/robots.txt")) == workers, server.paths("/robots.txt")
    assert_complete(server, database_url, job)
    fetched = page_fetches(server)
    assert len(fetched) == PAGES
    assert set(fetched.values()) == {1}, fetched.most_common(3)
    # Every worker took part in the crawl.
    for log in logs:
        assert "'frontier/dequeued'" in log
    stats = job_row(database_url, job)["stats"]
    # "pages" counts responses: each worker's robots.txt too.
    assert len(stats["workers"]) == workers and stats["pages"] == PAGES + workers
    assert all(w["items"] >= 1 for w in stats["workers"].values()), stats["workers"]


def _service(test_stack, name: str):
    return next(s for s in test_stack.services if s.name == name)


def test_postgres_stopped_for_ten_seconds(mock_server, scrapyd_url, database_url, redis_url,
                                          test_stack) -> None:
    server = mock_server(pages=PAGES, seed=11, page_delay=0.005)
    job = make_job(database_url)
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                  CRAWLGRAPH_BUFFER_MAX_ROWS=1000, CRAWLGRAPH_RETRY_MAX_SECONDS=1)
    wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 300)
    postgres = _service(test_stack, "postgres")
    postgres.stop()
    try:
        time.sleep(10)
    finally:
        postgres.start(ensure_credentials(test_stack.settings.home))
    wait_finished(scrapyd_url, [sj], timeout=240)
    log = crawl_log(scrapyd_url, sj)
    assert "retrying" in log and "pausing the crawl" in log
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}


def test_redis_restarted_mid_crawl(mock_server, scrapyd_url, database_url, redis_url,
                                   test_stack) -> None:
    server = mock_server(pages=PAGES, seed=13, page_delay=0.005)
    job = make_job(database_url)
    # Scrapy's stock downloader middlewares: this test is about the frontier. The
    # Redis-shared throttle of crawler.middlewares fails requests while Redis is
    # down (they end up as error pages without links), which is its own matter.
    sj = schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                  CRAWLGRAPH_RETRY_MAX_SECONDS=1, DOWNLOADER_MIDDLEWARES="{}")
    wait_running(scrapyd_url, sj)
    wait_pages(database_url, job, 300)
    service = _service(test_stack, "redis")
    service.stop()
    try:
        time.sleep(3)
    finally:
        service.start(ensure_credentials(test_stack.settings.home))
    wait_finished(scrapyd_url, [sj], timeout=240)
    log = crawl_log(scrapyd_url, sj)
    assert "Redis unreachable" in log and "Redis reachable again" in log
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}


def test_pause_then_resume_finishes_the_job(mock_server, scrapyd_url, database_url,
                                            redis_url) -> None:
    server = mock_server(pages=1000, seed=17, page_delay=0.01)
    job = make_job(database_url)
    first = schedule(scrapyd_url, job, server.start_url, database_url, redis_url)
    wait_running(scrapyd_url, first)
    wait_pages(database_url, job, 150)
    client, frontier = frontier_of(redis_url, job)
    try:
        frontier.pause()
        wait_finished(scrapyd_url, [first], timeout=60)
        log = crawl_log(scrapyd_url, first)
        assert "Spider closed (paused)" in log
        row = job_row(database_url, job)
        assert (row["status"], row["close_reason"]) == ("paused", "paused")
        # The frontier persists while paused: nothing leased, the rest still queued.
        stats = frontier.stats()
        assert stats["leased"] == 0 and stats["queued"] > 0
        stored_while_paused = len(stored_pages(database_url, job))
        assert stored_while_paused < 1000
        frontier.resume()
        second = schedule(scrapyd_url, job, server.start_url, database_url, redis_url)
        wait_finished(scrapyd_url, [second], timeout=240)
        crawl_log(scrapyd_url, second)
    finally:
        client.close()
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}
