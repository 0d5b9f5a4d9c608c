"""Download limits: a decompression bomb, an endless body and a stalled body are cut off."""

from __future__ import annotations

import json

import psycopg

from tests.crawlrun import run_crawl
from tests.test_downloadermiddleware_robots import make_job

SITE = "crawler.spiders.site.SiteSpider"


def test_bombs_endless_and_stalled_bodies_are_cut_off_and_recorded(mock_server, database_url):
    server = mock_server(pages=2)
    job_id = make_job(database_url)
    urls = [server.url("/bomb?mb=64"), server.url("/endless"),
            server.url("/bad-length?mode=hang&s=30"), server.start_url]
    result = run_crawl(SITE, {"start_urls": json.dumps(urls), "job_id": job_id, "max_depth": "0"},
                       {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True, "RETRY_TIMES": 0,
                        "DOWNLOAD_MAXSIZE": 2 * 1024 * 1024, "DOWNLOAD_TIMEOUT": 3,
                        "CRAWLGRAPH_DATABASE_URL": database_url}, timeout=120)
    by_url = {p["url"]: p for p in result.pages}
    assert by_url[server.start_url]["status"] == 200
    bomb = by_url[server.url("/bomb?mb=64")]
    endless = by_url[server.url("/endless")]
    stalled = by_url[server.url("/bad-length?mode=hang&s=30")]
    assert bomb["status"] == 0 and bomb["error"].startswith("cut off (size limit)")
    assert endless["status"] == 0 and endless["error"].startswith("cut off (size limit)")
    assert stalled["status"] == 0 and stalled["error"].startswith("cut off (time limit)")
    assert result.stats["crawlgraph/cut_off/size"] == 2
    assert result.stats["crawlgraph/cut_off/time"] == 1
    with psycopg.connect(database_url) as conn:
        events = conn.execute("SELECT kind, url FROM crawl_events WHERE job_id = %s",
                              (job_id,)).fetchall()
    assert sorted(url for kind, url in events if kind == "cut_off") == sorted(urls[:3])
