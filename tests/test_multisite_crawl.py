"""Many sites in one job: every site crawled, and the summary's per-site table true to them.

Twenty named sites of `tests.websites` (HTTP and HTTPS, redirects between
the apex, ``www.`` and ``go.``, links from each site to the next) and one
name whose server is down are crawled side by side by the `site` spider on
the Redis frontier with the storage pipeline. What PostgreSQL stored is
compared with the generator's truth (`World.page_urls` of each site), and so
is the per-site table of `GET /api/v1/jobs/{id}/summary`.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from tests.api_fixtures import login
from tests.conftest import free_port
from tests.crawlrun import run_crawl
from tests.websites import websites_fixture  # noqa: F401

pytest_plugins = ["tests.api_fixtures"]
pytestmark = pytest.mark.slow

SITE = "crawler.spiders.site.SiteSpider"
SITES = [f"site{i:02d}.test" for i in range(20)]
DOWN = "down.test"  # mapped to a loopback port nobody listens on


def test_twenty_sites_side_by_side_and_the_site_table(websites, client, users, database_url,
                                                     redis_url):
    sites = websites(sites=SITES, pages=3)
    world = sites.world
    job_id = uuid.uuid4()
    starts = [world.home(s) for s in SITES] + [f"https://{DOWN}/"]
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO jobs (id, owner_id, spider, status, params) "
                     "VALUES (%s, %s, 'site', 'running', %s)",
                     (job_id, users["alice"], json.dumps({"start_urls": starts})))
    closed = free_port()
    settings = {**sites.settings, "CRAWLGRAPH_DATABASE_URL": database_url,
                "CRAWLGRAPH_REDIS_URL": redis_url,
                "CRAWLGRAPH_RESOLVE": [*sites.resolve, f"{DOWN}:443:127.0.0.1:{closed}"],
                "RETRY_TIMES": 0}
    result = run_crawl(SITE, {"job_id": str(job_id), "start_urls": json.dumps(starts)},
                       settings, stack=True, timeout=240)
    assert result.returncode == 0, result.log[-3000:]

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT final_url, status FROM pages WHERE job_id = %s",
                            (job_id,)).fetchall()
    for site in SITES:  # every page of every site, each once, none failed
        stored = [url for url, status in rows if world.site_of(url) == site]
        assert sorted(stored) == sorted(world.page_urls(site)), site
        assert {status for url, status in rows if world.site_of(url) == site} == {200}

    response = client.get(f"/api/v1/jobs/{job_id}/summary", headers=login(client, "alice"))
    assert response.status_code == 200, response.text
    table = {row["site"]: row for row in response.json()["sites"]}
    assert set(table) == {*SITES, DOWN}
    for site in SITES:
        truth = len(world.page_urls(site))
        row = table[site]
        assert (row["pages"], row["pages_by_status"]["2xx"], row["errors"]) == (truth, truth, 0)
        assert row["robots"] == "allowed"  # the server answers robots.txt with a 404
    down = table[DOWN]
    assert (down["pages"], down["pages_by_status"]["failed"], down["errors"]) == (1, 1, 1)
    assert down["robots"] == "unreachable"
