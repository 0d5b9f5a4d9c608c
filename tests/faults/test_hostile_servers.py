"""Scenario 8: servers that answer slowly, drop connections, send a gzip bomb, an endless
chunked body or a wrong Content-Length, inside a real crawl of the `site` spider."""

from __future__ import annotations

import json

import psycopg
import pytest

from crawler.urls import canonicalize
from tests.faults.helpers import RssSampler, schedule_spider
from tests.test_crawl_reliability import (
    crawl_log,
    job_row,
    make_job,
    wait_finished,
    wait_running,
)

PAGES = 200
BOMB_MB = 256
# A crawler process holds about 100 MiB after start; the bomb alone inflates to 256 MiB.
RSS_LIMIT_MB = 230
# path -> (what the crawl must record, least number of fetches: 2 = retried once)
HOSTILE = {
    "/delay?s=30": ("cut off (time limit)", 2),
    "/drop": ("ConnectionDone", 2),
    "/drop-mid": ("", 2),
    f"/bomb?mb={BOMB_MB}": ("cut off (size limit)", 1),
    "/endless": ("cut off (", 1),  # size or time, whichever comes first
    "/bad-length?mode=short": ("", 2),
    "/bad-length?mode=hang&s=30": ("cut off (time limit)", 1),
}


@pytest.mark.slow
@pytest.mark.scenario(8, done="crawl a site plus a slow page, dropped connections, a 256 MiB "
                              "gzip bomb, an endless body, wrong Content-Lengths",
                      checked="each hostile URL stored with its error (cut off or retried, "
                              "cut-offs as crawl events); every site page stored; job "
                              "finished; crawler peak RSS < 230 MiB")
def test_hostile_servers_are_cut_off_or_retried_and_recorded(mock_server, scrapyd_url,
                                                             database_url, redis_url) -> None:
    server = mock_server(pages=PAGES, seed=41)
    job = make_job(database_url)
    hostile = {server.url(path): expect for path, expect in HOSTILE.items()}
    start_urls = [server.start_url, *hostile]
    sj = schedule_spider(
        scrapyd_url, "site",
        {"job_id": job, "start_urls": json.dumps(start_urls), "obey_robots": "false"},
        {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
         "DOWNLOAD_TIMEOUT": 3, "RETRY_TIMES": 1, "CRAWLGRAPH_RETRY_BACKOFF_BASE": 0.2,
         "CRAWLGRAPH_STATS_INTERVAL": 1, "LOG_LEVEL": "INFO"})
    pid = wait_running(scrapyd_url, sj)
    with RssSampler([pid], interval=0.2) as rss:
        wait_finished(scrapyd_url, [sj], timeout=240)
    peak = rss.peak_mb(pid)
    print(f"crawler peak RSS {peak:.0f} MiB over {len(rss.samples[pid])} samples")
    crawl_log(scrapyd_url, sj, tail=30)
    with psycopg.connect(database_url) as conn:
        pages = dict(conn.execute("SELECT url, coalesce(error, '') FROM pages "
                                  "WHERE job_id = %s", (job,)).fetchall())
        statuses = dict(conn.execute("SELECT url, status FROM pages WHERE job_id = %s",
                                     (job,)).fetchall())
        events = {url for (url,) in conn.execute(
            "SELECT url FROM crawl_events WHERE job_id = %s AND kind = 'cut_off'", (job,))}
    fetches = {path: 0 for path in HOSTILE}
    for request in server.requests():
        if request.path in fetches:
            fetches[request.path] += 1
    for url, (words, least) in hostile.items():
        path = url[len(server.origin):]
        key = canonicalize(url)
        assert key in pages, (url, sorted(pages)[:3])
        assert statuses[key] == 0 and pages[key], (url, statuses[key], pages[key])
        assert words in pages[key], (url, pages[key])
        assert fetches[path] >= least, (url, fetches[path])
        if words.startswith("cut off"):
            assert key in events, (url, events)
    site = server.site.reachable(server.origin)
    assert site <= pages.keys(), sorted(site - pages.keys())[:5]
    assert all(statuses[u] == 200 and not pages[u] for u in site)
    assert job_row(database_url, job)["status"] == "finished"
    assert peak < RSS_LIMIT_MB, f"crawler peak RSS {peak:.0f} MiB"
