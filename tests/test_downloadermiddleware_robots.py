"""robots.txt: RFC 9309 behaviour against the mock server, and the decision ledger."""

from __future__ import annotations

import json
import re
import uuid

import psycopg
import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.middlewares.robots import RobotsMiddleware
from crawler.spiders.site import SiteSpider
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def page_paths(server) -> list[str]:
    return [r.path for r in server.requests() if not r.path.startswith("/robots")]


def make_job(database_url: str) -> str:
    job_id = str(uuid.uuid4())
    with psycopg.connect(database_url) as conn:
        user = conn.execute("INSERT INTO users (username, password_hash) VALUES (%s, 'x') "
                            "RETURNING id", (f"u{job_id[:8]}",)).fetchone()[0]
        conn.execute("INSERT INTO jobs (id, owner_id, spider) VALUES (%s, %s, 'site')",
                     (job_id, user))
    return job_id


def test_disallowed_urls_are_never_requested_and_are_recorded(mock_server, database_url):
    robots = "User-agent: *\nDisallow: /p/1\nDisallow: /p/*7$\n"
    server = mock_server(pages=120, seed=3, robots=robots)
    job_id = make_job(database_url)
    result = run_crawl(SITE, {"start_urls": server.start_url, "job_id": job_id},
                       {**LOOPBACK, "CRAWLGRAPH_DATABASE_URL": database_url})
    fetched = page_paths(server)
    assert fetched and server.paths("/robots.txt") == ["/robots.txt"]  # fetched once
    forbidden = [p for p in fetched if p.startswith("/p/1") or re.fullmatch(r"/p/\d*7", p)]
    assert forbidden == []
    assert result.stats["robotstxt/forbidden"] > 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT url, decision, robots_status FROM robots_decisions "
                            "WHERE job_id = %s", (job_id,)).fetchall()
    assert rows and {(d, s) for _, d, s in rows} == {("disallowed", 200)}
    assert all(url.startswith(server.origin + "/p/1") or url.endswith("7") for url, _, _ in rows)
    # Every skip is in the ledger (a URL skipped twice is one row).
    assert len(rows) <= result.stats["robotstxt/forbidden"]


def test_rules_match_our_product_token_not_the_user_agent(mock_server):
    robots = ("User-agent: crawlgraph\nDisallow: /p/2\n\n"
              "User-agent: *\nDisallow: /\n")
    server = mock_server(pages=5, links_per_page=1, robots=robots)
    run_crawl(SITE, {"start_urls": server.start_url}, LOOPBACK)
    fetched = page_paths(server)
    assert fetched == ["/p/0", "/p/1"]  # /p/2 is ours to skip; the rest were allowed
    assert all("crawlgraph" not in r.user_agent for r in server.requests())


def test_robots_503_stops_the_host_404_allows_all(mock_server):
    down = mock_server(pages=10, robots="User-agent: *\nAllow: /\n", robots_status=503)
    result = run_crawl(SITE, {"start_urls": down.start_url}, LOOPBACK)
    assert page_paths(down) == [] and result.pages == []
    assert result.stats["robotstxt/forbidden"] == 1
    missing = mock_server(pages=10, robots_status=404)
    result = run_crawl(SITE, {"start_urls": missing.start_url}, LOOPBACK)
    assert len(result.pages) == 10


def test_unreachable_robots_disallows_and_the_start_url_says_why(mock_server):
    server = mock_server(pages=10, robots_status=0)  # the connection is dropped
    result = run_crawl(SITE, {"start_urls": server.start_url}, LOOPBACK)
    assert page_paths(server) == []  # nothing of the host is fetched (RFC 9309)
    # ... and the start URL is a page error with the cause, not a silent drop.
    assert [(p["url"], p["status"]) for p in result.pages] == [(server.start_url, 0)]
    assert result.pages[0]["error"].startswith("reset: 127.0.0.1: ")
    assert "robots.txt" in result.pages[0]["error"]


def test_robots_redirects_up_to_five(mock_server):
    five = mock_server(pages=10, links_per_page=1, robots="User-agent: *\nDisallow: /p/3\n",
                       robots_redirects=5)
    run_crawl(SITE, {"start_urls": five.start_url}, LOOPBACK)
    assert page_paths(five) == ["/p/0", "/p/1", "/p/2"]
    six = mock_server(pages=10, links_per_page=1, robots="User-agent: *\nDisallow: /p/3\n",
                      robots_redirects=6)
    run_crawl(SITE, {"start_urls": six.start_url}, LOOPBACK)
    assert page_paths(six) == []  # too many redirects: robots.txt unavailable


def test_obey_robots_false_ignores_it(mock_server):
    server = mock_server(pages=4, robots="User-agent: *\nDisallow: /\n")
    result = run_crawl(SITE, {"start_urls": server.start_url, "obey_robots": "false"},
                       LOOPBACK)
    assert len(result.pages) == 4 and server.paths("/robots.txt") == []


def test_crawl_delay_spaces_requests_to_the_host(mock_server):
    server = mock_server(pages=4, links_per_page=1, robots="User-agent: *\nCrawl-delay: 1\n")
    result = run_crawl(SITE, {"start_urls": json.dumps([server.start_url])}, LOOPBACK)
    assert len(result.pages) == 4
    times = [r.time for r in server.requests() if r.path.startswith("/p/")]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 1.0, gaps


class SitemapProbe(SiteSpider):
    """Yields the Sitemap: lines of robots.txt that the kit makes available."""

    name = "sitemap_probe"

    def parse(self, response):
        yield {"sitemaps": self.robots_sitemaps(response.url)}


def test_sitemap_lines_are_available_to_spiders(mock_server):
    robots = "User-agent: *\nAllow: /\nSitemap: {}/sitemap.xml\nSitemap: {}/news.xml\n"
    server = mock_server(pages=1)
    server.configure(robots=robots.format(server.origin, server.origin))
    result = run_crawl("tests.test_downloadermiddleware_robots.SitemapProbe",
                       {"start_urls": server.start_url}, LOOPBACK)
    assert result.other == [{"sitemaps": [server.url("/sitemap.xml"), server.url("/news.xml")]}]


def test_the_middleware_is_reachable_through_the_crawler():
    crawler = get_crawler(Spider, {"ROBOTSTXT_OBEY": True})
    middleware = RobotsMiddleware.from_crawler(crawler)
    assert RobotsMiddleware.for_crawler(crawler) is middleware
    off = get_crawler(Spider, {"ROBOTSTXT_OBEY": False})
    with pytest.raises(NotConfigured):
        RobotsMiddleware.from_crawler(off)
    assert RobotsMiddleware.for_crawler(off) is None
