"""TrapsMiddleware: over-long URLs, self-nesting paths and endless query variants are cut.

Unit tests per limit run the project's spider middlewares on a kit spider
(`tests.spiders.kit`); the job-wide count runs against the test stack's Redis;
one real crawl of a trap site (served here: an endless calendar, paths that
nest themselves, a URL that grows, session ids) finishes within the limits
with the traps in `crawl_events`, compared with what the site is known to hold.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from scrapy.exceptions import NotConfigured
from scrapy.http import Request

from crawler.spidermiddlewares.traps import RedisVariants, TrapsMiddleware
from crawler.spiders.args import MAX_URL_LENGTH
from tests.crawlrun import run_crawl
from tests.graphdata import make_job, make_user
from tests.spiders.kit import kit_crawler, page, scrape, start

START = "http://a.example/"


def passed(crawler, *urls: str) -> list[str]:
    out = scrape(crawler, page(START), [Request(u) for u in urls])
    return [r.url for r in out if isinstance(r, Request)]


def crawler_with(**settings: Any):
    return kit_crawler({"start_urls": START}, {f"CRAWLGRAPH_TRAPS_{k.upper()}": v
                                               for k, v in settings.items()})


def test_a_url_over_the_length_limit_is_cut_and_recorded_once_per_pattern():
    crawler = crawler_with(max_url_length=40)
    fits = START + "l/" + "x" * (40 - len(START) - 2)
    assert len(fits) == 40
    assert passed(crawler, fits, fits + "y", fits + "yz", START + "m/" + "x" * 40) == [fits]
    assert crawler.stats.get_value("crawlgraph/trap/url_length") == 3
    # /l/... twice is one pattern, /m/... another.
    assert crawler.stats.get_value("ledger/events/trap_url_length") == 2


def test_by_default_a_link_may_be_as_long_as_a_start_url():
    crawler = kit_crawler({"start_urls": START})
    longest = START + "y" * (MAX_URL_LENGTH - len(START))
    assert passed(crawler, longest, longest + "y") == [longest]


def test_a_path_repeating_a_segment_more_than_the_limit_is_cut():
    crawler = crawler_with(max_segment_repeats=3)
    ok = [START + "x/x/x/", START + "a/b/a/b/a/b/", START + "2024/01/01/p", START + "a//a//a/"]
    cut = [START + "x/x/x/x/", START + "a/b/a/b/a/b/a/", START + "a/b/c/a/b/c/a/b/c/a/b/c"]
    assert passed(crawler, *ok, *cut) == ok
    assert crawler.stats.get_value("crawlgraph/trap/repeated_segment") == 3
    # The pattern is the repeated segment: x, and a twice.
    assert crawler.stats.get_value("ledger/events/trap_repeated_segment") == 2


def test_more_query_variants_of_a_path_than_the_limit_are_cut():
    crawler = crawler_with(max_query_variants=3)
    months = [f"{START}cal?m={m}" for m in range(1, 6)]
    assert passed(crawler, *months) == months[:3]
    # A variant let through passes again (the frontier drops the duplicate), the
    # bare path is no variant, another path has variants of its own, and
    # trackers are gone before counting (the canonical-URL middleware runs first).
    again = passed(crawler, months[1], f"{START}cal", f"{START}cal?m=1&utm_source=x",
                   f"{START}other?m=9", f"{START}cal?m=6&utm_source=y")
    assert again == [months[1], f"{START}cal", months[0], f"{START}other?m=9"]
    assert crawler.stats.get_value("crawlgraph/trap/query_variants") == 3
    assert crawler.stats.get_value("ledger/events/trap_query_variants") == 1


def test_a_request_cut_by_one_limit_spends_no_variant():
    crawler = crawler_with(max_url_length=60, max_query_variants=1)
    long = f"{START}cal?m=" + "9" * 60
    assert passed(crawler, long, f"{START}cal?m=1") == [f"{START}cal?m=1"]
    assert crawler.stats.get_value("crawlgraph/trap/query_variants") is None


def test_start_requests_pass():
    crawler = kit_crawler({"start_urls": START + "x/x/x/x/"},
                          {"CRAWLGRAPH_TRAPS_MAX_SEGMENT_REPEATS": 1})
    assert [r.url for r in start(crawler)] == [START + "x/x/x/x/"]


def test_a_zero_limit_is_no_limit_and_the_middleware_can_be_switched_off():
    crawler = crawler_with(max_url_length=0, max_segment_repeats=0, max_query_variants=1)
    # (over 2048, the default, and under Scrapy's own URLLENGTH_LIMIT)
    long, nested = START + "y" * 2040, START + "x/" * 100
    assert passed(crawler, long, nested, START + "q?a=1", START + "q?a=2") == [
        long, nested, START + "q?a=1"]
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_TRAPS_ENABLED"):
        TrapsMiddleware.from_crawler(crawler_with(enabled=False))
    with pytest.raises(NotConfigured, match="limit is 0"):
        TrapsMiddleware.from_crawler(crawler_with(max_url_length=0, max_segment_repeats=0,
                                                  max_query_variants=0))


# --- the job's workers share the count --------------------------------------------------------

async def _through(mw: TrapsMiddleware, urls: list[str]) -> list[str]:
    async def output() -> AsyncIterator[Any]:
        for url in urls:
            yield Request(url)

    return [r.url async for r in mw.process_spider_output(page(START), output())]


def test_workers_of_a_job_share_the_variants_and_record_an_event_once(redis_url):
    job = str(uuid.uuid4())
    crawlers = [kit_crawler({"start_urls": START, "job_id": job}) for _ in range(2)]

    async def run() -> tuple[list[str], list[str], list[str]]:
        one, two = (TrapsMiddleware(c, max_query_variants=3,
                                    variants=RedisVariants(redis_url, job)) for c in crawlers)
        try:
            first = await _through(one, [f"{START}cal?m={m}" for m in (1, 2)])
            # The other worker gets one place left, and m=1 (admitted by the first) again.
            second = await _through(two, [f"{START}cal?m={m}" for m in (3, 4, 1)])
            third = await _through(one, [f"{START}cal?m={m}" for m in (5, 3)])
        finally:
            await one.variants.close()
            await two.variants.close()
        return first, second, third

    first, second, third = asyncio.run(run())
    assert first == [f"{START}cal?m=1", f"{START}cal?m=2"]
    assert second == [f"{START}cal?m=3", f"{START}cal?m=1"]
    assert third == [f"{START}cal?m=3"]
    events = [c.stats.get_value("ledger/events/trap_query_variants") for c in crawlers]
    assert sorted(events, key=lambda e: e or 0) == [None, 1]


# --- a real crawl of a trap site ---------------------------------------------------------------

MAX_VARIANTS, MAX_REPEATS, MAX_LENGTH = 8, 3, 120
SESSION = "0123456789ABCDEF"


class TrapSite(BaseHTTPRequestHandler):
    """An endless calendar, paths nesting themselves, a growing URL, session ids.

    - `/cal?month=N` links to months N-1 and N+1, for every integer N;
    - `/a/` links to `a/` (so `/a/a/`, `/a/a/a/`, ...) and `/b/c/` to `b/c/`;
    - `/grow/x` links to `/grow/xx`, one character longer each time, without end;
    - `/shop` answers any `;jsessionid=` and links to itself with a new one,
      and to `/item?id=1` with trackers and a PHP session id.
    """

    requests: list[str]
    sessions = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        parts = urlsplit(self.path)
        path = parts.path.split(";", 1)[0]
        links: list[str] = []
        if parts.path == "/":
            links = ["/cal?month=0", "/a/", "/b/c/", "/grow/x",
                     f"/shop;jsessionid={SESSION}?utm_source=home"]
        elif path == "/cal":
            month = int(parse_qs(parts.query)["month"][0])
            links = [f"/cal?month={month - 1}", f"/cal?month={month + 1}"]
        elif path.startswith(("/a/", "/b/c/")) and path.endswith("/"):
            links = ["a/" if path.startswith("/a/") else "b/c/"]
        elif path.startswith("/grow/"):
            links = [path + "x"]
        elif path == "/shop":
            type(self).sessions += 1
            links = [f"/shop;jsessionid={SESSION}{type(self).sessions}",
                     f"/item?id=1&utm_medium=shop&PHPSESSID={type(self).sessions}"]
        elif path == "/item":
            links = []
        else:
            self.send_error(404)
            return
        body = "".join(f'<a href="{h}">{h}</a>' for h in links).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def trap_site() -> Iterator[tuple[str, type[TrapSite]]]:
    handler = type("Site", (TrapSite,), {"requests": [], "sessions": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_trap_site_is_crawled_within_its_limits_and_the_traps_recorded(
        trap_site, database_url, redis_url):
    base, site = trap_site
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn), status="running")
    settings = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
                "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True, "ROBOTSTXT_OBEY": False,
                "CRAWLGRAPH_TRAPS_MAX_QUERY_VARIANTS": MAX_VARIANTS,
                "CRAWLGRAPH_TRAPS_MAX_SEGMENT_REPEATS": MAX_REPEATS,
                "CRAWLGRAPH_TRAPS_MAX_URL_LENGTH": MAX_LENGTH}
    result = run_crawl("crawler.spiders.site.SiteSpider",
                       {"job_id": str(job), "start_urls": json.dumps([base + "/"])},
                       settings, stack=True, timeout=240)
    assert result.reason == "finished", result.log[-3000:]

    with psycopg.connect(database_url) as conn:
        pages = {u for (u,) in conn.execute("SELECT url FROM pages WHERE job_id = %s", (job,))}
        events = conn.execute("SELECT kind, host, url, detail FROM crawl_events "
                              "WHERE job_id = %s AND kind LIKE 'trap%%'", (job,)).fetchall()

    # What the site holds within the limits.
    months = sorted(int(parse_qs(urlsplit(u).query)["month"][0]) for u in pages
                    if urlsplit(u).path == "/cal")
    # Each month is found from a neighbour: the months let through are a run around 0.
    assert len(months) == MAX_VARIANTS
    assert 0 in months and months == list(range(months[0], months[0] + MAX_VARIANTS))
    nested = {f"{base}/" + "a/" * n for n in range(1, MAX_REPEATS + 1)} | {
        f"{base}/" + "b/c/" * n for n in range(1, MAX_REPEATS + 1)}
    grown = {f"{base}/grow/" + "x" * n for n in range(1, MAX_LENGTH + 1)
             if len(f"{base}/grow/") + n <= MAX_LENGTH}
    expected = {f"{base}/", f"{base}/shop", f"{base}/item?id=1"} | nested | grown
    assert pages - {u for u in pages if urlsplit(u).path == "/cal"} == expected
    # Session ids are stripped: the shop is fetched once although every visit links anew.
    assert [p for p in site.requests if p.startswith("/shop")] == ["/shop"]

    by_kind: dict[str, list[tuple[str, str, str]]] = {}
    for kind, host, url, detail in events:
        by_kind.setdefault(kind, []).append((host, url, detail))
    assert set(by_kind) == {"trap_query_variants", "trap_repeated_segment", "trap_url_length"}
    host = urlsplit(base).netloc
    # One event per pattern: the calendar's path, the segments a and b (c comes with b: one
    # path, its most repeated segment first), the /grow prefix.
    ((_, cal, detail),) = by_kind["trap_query_variants"]
    month = int(parse_qs(urlsplit(cal).query)["month"][0])
    assert month in (months[0] - 1, months[-1] + 1) and f"{base}/cal" in detail
    assert sorted(url for _, url, _ in by_kind["trap_repeated_segment"]) == [
        f"{base}/" + "a/" * (MAX_REPEATS + 1), f"{base}/" + "b/c/" * (MAX_REPEATS + 1)]
    ((_, long_url, _),) = by_kind["trap_url_length"]
    assert long_url == f"{base}/grow/" + "x" * (MAX_LENGTH - len(f"{base}/grow/") + 1)
    assert {h for _, h, _, _ in events} == {host}
