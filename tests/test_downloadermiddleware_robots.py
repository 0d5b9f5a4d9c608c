"""robots.txt: RFC 9309 behaviour against the mock server, and the decision ledger."""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid

import psycopg
import pytest
import redis.asyncio
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.frontier import JobFrontier
from crawler.middlewares.robots import RobotsMiddleware
from crawler.middlewares.robotswait import RobotsOutages
from crawler.spiders.site import SiteSpider
from tests.crawlrun import run_crawl
from tests.test_spider_site_stack import make_job as make_site_job

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


def test_without_a_frontier_robots_503_gives_up_at_once_404_allows_all(mock_server):
    # A plain crawl (Scrapy's in-memory scheduler) has nowhere to wait: the host's
    # requests are not fetched, and each is a page error that says why.
    down = mock_server(pages=10, robots="User-agent: *\nAllow: /\n", robots_status=503)
    result = run_crawl(SITE, {"start_urls": down.start_url}, LOOPBACK)
    assert page_paths(down) == []
    assert [(p["url"], p["status"]) for p in result.pages] == [(down.start_url, 0)]
    assert result.pages[0]["error"].startswith(
        "robots_unavailable: 127.0.0.1: robots.txt stayed unavailable past the wait")
    assert "it last answered 503" in result.pages[0]["error"]
    assert result.stats["robotstxt/gave_up"] == 1
    missing = mock_server(pages=10, robots_status=404)
    result = run_crawl(SITE, {"start_urls": missing.start_url}, LOOPBACK)
    assert len(result.pages) == 10


def test_a_reset_robots_is_waited_for_like_a_5xx(mock_server):
    server = mock_server(pages=10, robots_status=0)  # the connection is dropped
    result = run_crawl(SITE, {"start_urls": server.start_url}, LOOPBACK)
    assert page_paths(server) == []  # nothing of the host is fetched (RFC 9309)
    # ... and the start URL is a page error with the cause, not a silent drop.
    assert [(p["url"], p["status"]) for p in result.pages] == [(server.start_url, 0)]
    assert result.pages[0]["error"].startswith("robots_unavailable: 127.0.0.1: ")
    assert "it last reset the connection" in result.pages[0]["error"]


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


# --- outages: the job's shared state, and crawls that wait in the frontier ---------------
def _outages(redis_url: str, job_id: str, coro, **kwargs):
    """Run `coro(outages)` on a RobotsOutages of the job, in its own event loop."""
    async def run():
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            options = {"max_wait": 60.0, "base": 0.2, "cap": 1.0, "claim_seconds": 30.0,
                       "poll_seconds": 0.5, "rng": random.Random(7), **kwargs}
            return await coro(RobotsOutages(JobFrontier(client, job_id), **options))
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_an_outage_is_shared_backed_off_claimed_and_ended(redis_url):
    origin = "http://a.test:80"

    async def scenario(outages: RobotsOutages):
        seen = [await outages.check(origin)]
        first = await outages.failed(origin, "", 503, "answered 503")
        # Another worker's first fetch failed at the same time: recorded once.
        twin = await outages.failed(origin, "", 503, "answered 503")
        waiting = await outages.check(origin)
        await asyncio.sleep(first.delay + 0.05)
        ask = await outages.check(origin)  # this worker may ask now ...
        other = await outages.check(origin)  # ... and another one waits meanwhile
        second = await outages.failed(origin, ask.token, 503, "answered 503")
        await outages.answered(origin)
        seen.append(await outages.check(origin))
        return first, twin, waiting, ask, other, second, seen

    first, twin, waiting, ask, other, second, seen = _outages(
        redis_url, str(uuid.uuid4()), scenario)
    assert seen == [None, None]  # no outage before the first failure and after the answer
    assert (first.verdict, first.attempt, first.news) == ("wait", 1, True)
    assert 0.1 <= first.delay <= 0.3  # base 0.2 s, jittered by [0.5, 1.5)
    assert (twin.verdict, twin.attempt, twin.news) == ("wait", 1, False)
    assert waiting.verdict == "wait" and 0 < waiting.delay <= first.delay
    assert ask.verdict == "ask" and ask.token and (ask.attempt, ask.status) == (1, 503)
    assert other.verdict == "wait" and 0 < other.delay <= 0.5  # looks again soon
    assert (second.verdict, second.attempt, second.news) == ("wait", 2, False)
    assert 0.2 <= second.delay <= 0.6  # the backoff doubled


def test_an_outage_past_the_bound_gives_up_once(redis_url):
    origin = "http://b.test:80"

    async def scenario(outages: RobotsOutages):
        first = await outages.failed(origin, "", 503, "answered 503")
        states = []
        for _ in range(20):  # bounded: the bound is 0.6 s, each ask at most 0.6 s apart
            await asyncio.sleep(max(states[-1].delay if states else first.delay, 0) + 0.02)
            ask = await outages.check(origin)
            if ask.verdict == "gave_up":
                states.append(ask)
                break
            states.append(await outages.failed(origin, ask.token, 0, "reset the connection"))
        return first, states, await outages.check(origin)

    first, states, after = _outages(redis_url, str(uuid.uuid4()), scenario, max_wait=0.6,
                                    base=0.5, cap=5.0)
    assert first.delay <= 0.6  # never later than the bound
    gave_up = [s for s in states if s.verdict == "gave_up"]
    # The failed ask at the bound gives up and says so; a later check only reads it.
    assert [s.news for s in gave_up] == [True, False]
    assert gave_up[0].waited >= 0.6 and all(s.verdict == "wait" for s in states[:-2])
    assert (after.verdict, after.status, after.detail) == ("gave_up", 0, "reset the connection")


def stack_settings(database_url: str, redis_url: str, **extra) -> dict:
    return {**LOOPBACK, "CRAWLGRAPH_DATABASE_URL": database_url,
            "CRAWLGRAPH_REDIS_URL": redis_url, "CRAWLGRAPH_ROBOTS_BACKOFF_BASE": 0.2,
            "CRAWLGRAPH_THROTTLE_BACKOFF_BASE": 0.1, **extra}


@pytest.mark.parametrize("outage_status", [503, 0])  # a 5xx, a dropped connection
def test_an_outage_waits_in_the_frontier_then_the_host_is_crawled(
        mock_server, database_url, redis_url, outage_status):
    server = mock_server(pages=20, seed=4, robots="User-agent: *\nAllow: /\n",
                         robots_outage=3, robots_outage_status=outage_status)
    job_id = make_site_job(database_url)
    result = run_crawl(SITE, {"start_urls": server.start_url, "job_id": job_id},
                       stack_settings(database_url, redis_url), stack=True)
    assert result.reason == "finished", result.log[-3000:]
    log = server.requests()
    robots = [r.time for r in log if r.path == "/robots.txt"]
    pages = [r.time for r in log if r.path.startswith("/p/")]
    assert len(robots) >= 4  # three failures, then the answer
    assert pages and min(pages) > robots[3]  # no page before robots.txt answered
    with psycopg.connect(database_url) as conn:
        stored = dict(conn.execute("SELECT url, status FROM pages WHERE job_id = %s",
                                   (job_id,)).fetchall())
    assert stored == server.site.page_status(server.origin)
    assert result.stats["robotstxt/deferred"] >= 1
    assert result.stats["frontier/deferred_total"] == result.stats["frontier/deferrals"]
