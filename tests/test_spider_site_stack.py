"""The site spider through the real stack: scrapyd workers, the Redis frontier, Postgres.

The job is seeded the way the job API does it (`JobFrontier.seed`), its
workers are scheduled on the session's scrapyd with this test's database and
Redis, and what is compared is what Postgres stored against the generator's
own data, and the mock server's request log.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
import redis

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
        links = set(conn.execute("SELECT source_url, target_url FROM links WHERE job_id = %s",
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


def test_crawl_delay_holds_across_two_workers(mock_server, scrapyd_url, database_url,
                                              redis_url):
    server = mock_server(pages=6, links_per_page=2, seed=1,
                         robots="User-agent: *\nCrawl-delay: 1\n")
    job_id = make_job(database_url, workers=2)
    seed(redis_url, job_id, [server.start_url])
    args = {"start_urls": json.dumps([server.start_url])}
    ids = [schedule_site(scrapyd_url, job_id, args, database_url, redis_url) for _ in range(2)]
    wait_finished(scrapyd_url, ids, timeout=180)
    pages, _, _ = stored(database_url, job_id)
    assert set(pages) == server.site.page_urls(server.origin)
    log = server.requests()
    page_times = sorted(r.time for r in log if r.path.startswith("/p/"))
    assert len(page_times) == 6  # each page fetched once by the two workers together
    gaps = [b - a for a, b in zip(page_times, page_times[1:], strict=False)]
    assert min(gaps) >= 1.0, gaps
    # Both workers took part (each fetched robots.txt with its own user agent pool).
    assert len(server.paths("/robots.txt")) == 2
