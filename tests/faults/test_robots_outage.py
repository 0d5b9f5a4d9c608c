"""Scenario 20: robots.txt of the crawled host is down (503) for the first part of a crawl.

Two `site` workers on scrapyd share one job. The mock server answers its
first robots.txt requests with 503, then with the rules: RFC 9309 lets no
page of the host be fetched before that, and none is lost — the host's
requests wait in the job's frontier (deferred, with backoff shared by both
workers) and every page of the generated site is stored in the end. The
mock server's own request log is the truth for "before".

And the bound: robots.txt that stays down past `CRAWLGRAPH_ROBOTS_MAX_WAIT`
turns the waiting URLs into page errors with the cause `robots_unavailable`,
a `robots_gave_up` crawl event, and a failed job that says why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
import redis

from crawler.frontier import FrontierKeys
from tests.test_spider_site_stack import make_job, schedule_site, seed, stored, wait_finished

ROBOTS = "User-agent: *\nAllow: /\n"
OUTAGE = 4  # robots.txt requests answered 503 before the first 200
# Short backoffs, so that the outage and the crawl take seconds, not minutes.
FAST = {"CRAWLGRAPH_ROBOTS_BACKOFF_BASE": 0.5, "CRAWLGRAPH_ROBOTS_BACKOFF_MAX": 2,
        "CRAWLGRAPH_THROTTLE_BACKOFF_BASE": 0.2, "CRAWLGRAPH_LEASE_SECONDS": 10}


def worker_stats(database_url: str, job_id: str) -> dict[str, dict]:
    with psycopg.connect(database_url) as conn:
        stats = conn.execute("SELECT stats FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
    return (stats or {}).get("workers") or {}


@pytest.mark.slow
@pytest.mark.scenario(20, done="robots.txt answers 503 for the first part of a crawl, then "
                               "200; two workers share the job",
                      checked="no page of the host requested before robots.txt's first 200 "
                              "(the server's log); every page of the site stored; job finished")
def test_pages_wait_for_robots_txt_and_are_all_crawled_after_it_answers(
        mock_server, scrapyd_url, database_url, redis_url) -> None:
    server = mock_server(pages=80, seed=20, robots=ROBOTS, robots_outage=OUTAGE)
    origin = server.origin
    page_urls = sorted(server.site.page_urls(origin))
    # More seeds than one worker holds at once: both workers have pages waiting.
    seeds = [server.start_url] + [u for u in page_urls if u != server.start_url][:11]
    job_id = make_job(database_url, workers=2)
    seed(redis_url, job_id, seeds)
    args = {"start_urls": json.dumps(seeds)}
    ids = [schedule_site(scrapyd_url, job_id, args, database_url, redis_url,
                         CRAWLGRAPH_PREFETCH=4, **FAST) for _ in range(2)]
    wait_finished(scrapyd_url, ids, timeout=240)

    log = server.requests()
    robots = [r.time for r in log if r.path == "/robots.txt"]
    pages = [r.time for r in log if r.path.startswith("/p/")]
    assert len(robots) > OUTAGE, robots
    first_answer = robots[OUTAGE]  # the server answered the first OUTAGE requests 503
    assert pages and min(pages) > first_answer, (min(pages) - first_answer)
    # Every page of the site's truth is stored, with its status, and the job finished.
    stored_pages, links, status = stored(database_url, job_id)
    assert status == "finished"
    assert stored_pages == server.site.page_status(origin)
    assert links == server.site.link_set(origin)
    # Both workers took part, and requests were deferred (not dropped, not failed).
    workers = worker_stats(database_url, job_id)
    assert len(workers) == 2, workers
    with psycopg.connect(database_url) as conn:
        errors = conn.execute("SELECT count(*) FROM pages WHERE job_id = %s AND status = 0",
                              (job_id,)).fetchone()[0]
        events = dict(conn.execute("SELECT kind, count(*) FROM crawl_events WHERE job_id = %s "
                                   "GROUP BY 1", (job_id,)).fetchall())
    assert errors == 0
    assert events.get("robots_unavailable", 0) >= 1 and "robots_gave_up" not in events


@pytest.mark.slow
@pytest.mark.scenario(20, done="robots.txt answers 503 for longer than "
                               "CRAWLGRAPH_ROBOTS_MAX_WAIT",
                      checked="no page requested; the waiting URLs are page errors "
                              "'robots_unavailable' after the bound, one robots_gave_up "
                              "event, the job failed with the reason")
def test_urls_waiting_past_the_bound_are_recorded_as_not_fetched(
        mock_server, scrapyd_url, database_url, redis_url) -> None:
    max_wait = 4
    server = mock_server(pages=10, seed=2, robots=ROBOTS, robots_outage=10**6)
    seeds = sorted(server.site.page_urls(server.origin))[:3]
    job_id = make_job(database_url, workers=2)
    seed(redis_url, job_id, seeds)
    args = {"start_urls": json.dumps(seeds)}
    ids = [schedule_site(scrapyd_url, job_id, args, database_url, redis_url,
                         CRAWLGRAPH_ROBOTS_MAX_WAIT=max_wait, **FAST) for _ in range(2)]
    wait_finished(scrapyd_url, ids, timeout=180)

    log = server.requests()
    assert [r.path for r in log if r.path != "/robots.txt"] == []  # nothing of the host
    first_ask = min(r.time for r in log)
    with psycopg.connect(database_url) as conn:
        pages = conn.execute("SELECT url, status, error, fetched_at FROM pages "
                             "WHERE job_id = %s ORDER BY url", (job_id,)).fetchall()
        events = conn.execute("SELECT kind, status, detail FROM crawl_events WHERE job_id = %s "
                              "AND kind = 'robots_gave_up'", (job_id,)).fetchall()
        status, error = conn.execute("SELECT status, error FROM jobs WHERE id = %s",
                                     (job_id,)).fetchone()
    assert [url for url, *_ in pages] == seeds
    for _, code, text, fetched_at in pages:
        assert code == 0
        assert text.startswith("robots_unavailable: 127.0.0.1: robots.txt stayed unavailable "
                               "past the wait, the page was not fetched (robots.txt: "
                               "unavailable for "), text
        assert text.endswith("it last answered 503)"), text
        # Recorded once the bound had passed, not before.
        assert fetched_at >= datetime.fromtimestamp(first_ask + max_wait, UTC)
    assert len(events) == 1 and events[0][1] == 503, events
    assert "past CRAWLGRAPH_ROBOTS_MAX_WAIT" in events[0][2]
    assert status == "failed"
    assert error == ("no page could be fetched: 127.0.0.1: robots.txt stayed unavailable past "
                     "the wait, the page was not fetched (3 URLs)")
    # The given-up host's shared state went with the job's frontier: only the tombstone is left.
    keys = FrontierKeys(job_id)
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=keys.pattern)) == [keys.ended.encode()]
    finally:
        client.close()
