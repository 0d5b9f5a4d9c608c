"""The site spider through the real stack: scrapyd workers, the Redis frontier, Postgres.

The job is seeded the way the job API does it (`JobFrontier.seed`), its
workers are scheduled on the session's scrapyd with this test's database and
Redis, and what is compared is what Postgres stored against the generator's
own data, and the mock server's request log.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
import redis
import redis.asyncio

from crawler.frontier import JobFrontier
from tests.test_crawl_reliability import _scrapyd, scrapyd_jobs

pytestmark = pytest.mark.slow


def make_job(database_url: str, workers: int = 1) -> str:
    job_id = str(uuid.uuid4())
    with psycopg.connect(database_url) as conn:
        user = conn.execute("INSERT INTO users (username, password_hash) VALUES (%s, 'x') "
                            "RETURNING id", (f"s{job_id[:8]}",)).fetchone()[0]
        conn.execute("INSERT INTO jobs (id, owner_id, spider, workers) VALUES (%s, %s, 'site', %s)",
                     (job_id, user, workers))
    return job_id


def seed(redis_url: str, job_id: str, urls: list[str]) -> None:
    if inspect.iscoroutinefunction(JobFrontier.seed):  # the async-only JobFrontier
        async def run() -> None:
            client = redis.asyncio.Redis.from_url(redis_url)
            try:
                await JobFrontier(client, job_id).seed(urls)
            finally:
                await client.aclose()

        asyncio.run(run())
        return
    client = redis.Redis.from_url(redis_url)
    try:
        JobFrontier(client, job_id).seed(urls)
    finally:
        client.close()


def schedule_site(scrapyd_url: str, job_id: str, args: dict[str, str], database_url: str,
                  redis_url: str, **settings: object) -> str:
    base, auth = _scrapyd(scrapyd_url)
    all_settings = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
                    "CRAWLGRAPH_STATS_INTERVAL": 1, "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True,
                    "LOG_LEVEL": "INFO", **settings}
    data = [("project", "crawlgraph"), ("spider", "site"), ("job_id", job_id)]
    data += list(args.items())
    data += [("setting", f"{k}={v}") for k, v in all_settings.items()]
    response = httpx.post(f"{base}/schedule.json", content=urlencode(data), auth=auth,
                          headers={"Content-Type": "application/x-www-form-urlencoded"},
                          timeout=30)
    body = response.json()
    assert body.get("status") == "ok", body
    return body["jobid"]


def wait_finished(scrapyd_url: str, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(ids) <= {job["id"] for job in scrapyd_jobs(scrapyd_url)["finished"]}:
            return
        time.sleep(0.5)
    base, auth = _scrapyd(scrapyd_url)
    for scrapyd_job in ids:
        log = httpx.get(f"{base}/logs/crawlgraph/site/{scrapyd_job}.log", auth=auth,
                        timeout=30).text
        print(f"--- {scrapyd_job} ---\n" + "\n".join(log.splitlines()[-60:]))
    raise AssertionError(f"crawler processes {ids} did not finish in {timeout} s")


def stored(database_url: str, job_id: str) -> tuple[dict[str, int], set[tuple[str, str]], str]:
    with psycopg.connect(database_url) as conn:
        pages = dict(conn.execute("SELECT final_url, status FROM pages WHERE job_id = %s",
                                  (job_id,)).fetchall())
        links = set(conn.execute("SELECT source_url, target_url FROM link_urls WHERE job_id = %s",
                                 (job_id,)).fetchall())
        status = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
    return pages, links, status


def test_stored_graph_equals_the_generated_site(mock_server, scrapyd_url, database_url,
                                                redis_url):
    server = mock_server(pages=1000, seed=21, tricky=True)
    origin = server.origin
    job_id = make_job(database_url)
    seed(redis_url, job_id, [server.start_url])
    ids = [schedule_site(scrapyd_url, job_id, {"start_urls": json.dumps([server.start_url])},
                         database_url, redis_url)]
    wait_finished(scrapyd_url, ids, timeout=240)
    pages, links, status = stored(database_url, job_id)
    assert status == "finished"
    assert pages == server.site.page_status(origin)
    assert links == server.site.link_set(origin)


# Each worker of the crawl-delay test holds at most CONCURRENT_REQUESTS requests in its
# downloader and PREFETCH more in its local queue; one seeded URL more than that is
# left in the frontier for the other worker, however late it starts.
TWO_WORKER_SETTINGS = {"CONCURRENT_REQUESTS": 1, "CRAWLGRAPH_PREFETCH": 1}
HELD_PER_WORKER = 2
# robots.txt is held until both workers asked for it; their robots.txt request must
# not time out meanwhile (it would disallow the host).
ROBOTS_HOLD_TIMEOUT = 120
# Only the Crawl-delay spaces the requests: the adaptive delay would follow the held
# robots.txt's latency.
NOT_ADAPTIVE = {"CRAWLGRAPH_THROTTLE_ADAPTIVE": False, "DOWNLOAD_TIMEOUT": 150}


def worker_stats(database_url: str, job_id: str) -> dict[str, dict]:
    with psycopg.connect(database_url) as conn:
        stats = conn.execute("SELECT stats FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
    return (stats or {}).get("workers") or {}


def test_crawl_delay_holds_across_two_workers(mock_server, scrapyd_url, database_url,
                                              redis_url):
    """Two workers crawl one host together, and its Crawl-delay holds between them.

    Both take part by construction, not by timing: the frontier is seeded with more
    pages than one worker can hold, and the server answers robots.txt (which a worker
    reads before its first page) only once both workers have asked for it. So the
    first worker cannot fetch a page before the second has a page to fetch.
    """
    server = mock_server(pages=6, links_per_page=2, seed=1,
                         robots="User-agent: *\nCrawl-delay: 1\n", robots_hold=2,
                         robots_hold_timeout=ROBOTS_HOLD_TIMEOUT)
    page_urls = sorted(server.site.page_urls(server.origin))
    seeds = [server.start_url] + [u for u in page_urls if u != server.start_url]
    seeds = seeds[:HELD_PER_WORKER + 1]
    job_id = make_job(database_url, workers=2)
    seed(redis_url, job_id, seeds)
    args = {"start_urls": json.dumps(seeds)}
    ids = [schedule_site(scrapyd_url, job_id, args, database_url, redis_url,
                         **TWO_WORKER_SETTINGS, **NOT_ADAPTIVE) for _ in range(2)]
    wait_finished(scrapyd_url, ids, timeout=ROBOTS_HOLD_TIMEOUT + 120)
    # Both workers asked for robots.txt (each once), so both held a page to fetch,
    # and both stored items of pages they fetched (robots.txt yields none).
    assert len(server.paths("/robots.txt")) == 2, server.paths()
    workers = worker_stats(database_url, job_id)
    assert len(workers) == 2 and all(w["items"] >= 1 for w in workers.values()), workers
    pages, _, status = stored(database_url, job_id)
    assert status == "finished"
    assert set(pages) == set(page_urls)
    log = server.requests()
    page_fetches = sorted((r.time, r.path) for r in log if r.path.startswith("/p/"))
    # Each page fetched once by the two workers together...
    assert sorted(path for _, path in page_fetches) == sorted(
        url[len(server.origin):] for url in page_urls)
    # ...and never two of them less than the Crawl-delay apart.
    times = [t for t, _ in page_fetches]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1.0, gaps
