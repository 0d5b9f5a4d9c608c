"""Retries with exponential backoff, and block detection (CAPTCHA pages, 403 bursts)."""

from __future__ import annotations

import json
import random

import psycopg
import redis

from crawler.middlewares.retries import backoff_seconds
from tests.crawlrun import run_crawl
from tests.test_downloadermiddleware_robots import make_job

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def test_backoff_is_exponential_capped_and_jittered():
    rng = random.Random(1)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)]:
        delays = [backoff_seconds(attempt, 1.0, 60.0, rng) for _ in range(50)]
        assert all(0.5 * base <= d < 1.5 * base for d in delays)
        assert len(set(delays)) > 1


def test_5xx_and_dropped_connections_are_retried_with_growing_pauses(mock_server):
    server = mock_server(pages=2)
    flaky = server.url("/flaky/a?fail=3&status=500")
    result = run_crawl(SITE, {"start_urls": json.dumps([flaky]), "max_depth": "0"},
                       {**LOOPBACK, "RETRY_TIMES": 3, "CRAWLGRAPH_RETRY_BACKOFF_BASE": 0.3})
    assert [p["status"] for p in result.pages] == [200]
    times = [r.time for r in server.requests("/flaky/a")]
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # Retry n waits base * 2**(n-1) * [0.5, 1.5).
    assert gaps[0] >= 0.15 and gaps[1] >= 0.3 and gaps[2] >= 0.6, gaps
    gave_up = run_crawl(SITE, {"start_urls": server.url("/status/503"), "max_depth": "0"},
                        {**LOOPBACK, "RETRY_TIMES": 2, "CRAWLGRAPH_RETRY_BACKOFF_BASE": 0.1,
                         "CRAWLGRAPH_THROTTLE_BACKOFF_BASE": 0.1})
    assert [p["status"] for p in gave_up.pages] == [503]
    assert len(server.requests("/status/503")) == 3


def test_captcha_and_403_burst_slow_the_host_and_are_recorded(mock_server, database_url,
                                                             redis_url):
    server = mock_server(pages=2)
    job_id = make_job(database_url)
    urls = [server.url("/captcha")] + [server.url(f"/status/403?n={i}") for i in range(5)]
    result = run_crawl(SITE, {"start_urls": json.dumps(urls), "job_id": job_id,
                              "max_depth": "0"},
                       {**LOOPBACK, "CRAWLGRAPH_DATABASE_URL": database_url,
                        "CRAWLGRAPH_REDIS_URL": redis_url, "CRAWLGRAPH_BLOCK_403_BURST": 5})
    assert len(result.pages) == 6  # blocked pages are still pages
    assert result.stats["blocks/captcha"] == 1
    assert result.stats["blocks/forbidden_burst"] == 1
    assert result.stats["throttle/slowed_down"] == 2
    with psycopg.connect(database_url) as conn:
        kinds = sorted(k for (k,) in conn.execute(
            "SELECT kind FROM crawl_events WHERE job_id = %s", (job_id,)))
    assert kinds == ["captcha", "forbidden_burst"]
    # Each signal doubled the host's delay (at least 1 s) in the job's shared state.
    client = redis.Redis.from_url(redis_url)
    state = client.hgetall(f"crawlgraph:{job_id}:throttle:127.0.0.1:{server.port}")
    client.close()
    assert float(state[b"delay"]) >= 2.0
