"""The conditional-request middleware against a real PostgreSQL: what it sends, what a 304 carries.

A previous job's pages and links are stored as the storage pipeline stores
them; the middleware of a recrawl loads them, asks conditionally, and turns a
304 into the previous page and links (stored and followed), a 200 into a
page compared by its hash. The end-to-end recrawl is in tests/test_recrawl.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import psycopg
from scrapy.http import HtmlResponse, Request, Response

from crawler.items import Link, Page
from crawler.middlewares.conditional import ConditionalMiddleware
from tests.graphdata import add_links, make_job, make_user
from tests.spiders.kit import kit_crawler, scrape

ORIGIN = "http://a.example"
BODY = b"<html><head><title>Old</title></head><body><a href='/c'>c</a></body></html>"


def _previous(database_url: str) -> tuple[str, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        previous, job = make_job(conn, owner), make_job(conn, owner, status="running")
        for path, etag, modified in (("/a", '"a1"', "Tue, 01 Dec 2026 10:00:00 GMT"),
                                     ("/b", None, None), ("/c", '"c1"', None)):
            conn.execute(
                "INSERT INTO pages (job_id, url, final_url, status, fetched_at, title, size, "
                "content_hash, content_type, etag, last_modified) "
                "VALUES (%s, %s, %s, 200, %s, 'Old', %s, %s, 'text/html', %s, %s)",
                (previous, ORIGIN + path, ORIGIN + path, datetime.now(UTC), len(BODY),
                 hashlib.sha256(BODY).hexdigest(), etag, modified))
        add_links(conn, previous, [(ORIGIN + "/a", ORIGIN + target, 2, nofollow, "old")
                                   for target, nofollow in (("/b", False), ("/c", False),
                                                            ("/x", True))])
    return str(previous), str(job)


def _recrawler(database_url: str, previous: str, job: str, **settings):
    crawler = kit_crawler({"start_urls": ORIGIN + "/a", "job_id": job, "recrawl_of": previous},
                          {"CRAWLGRAPH_DATABASE_URL": database_url, **settings})
    middleware = ConditionalMiddleware.from_crawler(crawler)
    return crawler, middleware


def _answer(middleware: ConditionalMiddleware, request: Request, response: Response) -> Response:
    async def run() -> Response:
        await middleware._opened()
        middleware.process_request(request)
        return await middleware.process_response(request, response)
    return asyncio.run(run())


def test_a_304_is_the_previous_page_and_its_links_stored_and_followed(database_url):
    previous, job = _previous(database_url)
    crawler, middleware = _recrawler(database_url, previous, job)
    request = Request(ORIGIN + "/a", meta={"depth": 1})
    answer = _answer(middleware, request, Response(ORIGIN + "/a", status=304, request=request))
    assert request.headers[b"If-None-Match"] == b'"a1"'
    assert request.headers[b"If-Modified-Since"] == b"Tue, 01 Dec 2026 10:00:00 GMT"
    out = scrape(crawler, answer)
    (page,) = [o for o in out if isinstance(o, Page)]
    assert (page.status, page.title, page.size, page.change, page.etag) == (
        200, "Old", len(BODY), "unchanged", '"a1"')
    assert page.content_hash == hashlib.sha256(BODY).hexdigest() and page.depth == 1
    assert {(x.target_url, x.count, x.nofollow) for x in out if isinstance(x, Link)} == {
        (ORIGIN + "/b", 2, False), (ORIGIN + "/c", 2, False), (ORIGIN + "/x", 2, True)}
    # The spider follows the carried links as it would a downloaded page's (not nofollow).
    followed = {r.url for r in crawler.spider.parse(answer)}
    assert followed == {ORIGIN + "/b", ORIGIN + "/c"}
    assert crawler.stats.get_value("conditional/not_modified") == 1


def test_a_downloaded_page_is_compared_by_its_hash(database_url):
    previous, job = _previous(database_url)
    crawler, middleware = _recrawler(database_url, previous, job)
    marks = {}
    for path, body in (("/b", BODY), ("/c", BODY + b"<p>new</p>"), ("/n", BODY)):
        request = Request(ORIGIN + path)
        answer = _answer(middleware, request, HtmlResponse(
            ORIGIN + path, body=body, request=request,
            headers={"Content-Type": "text/html", "ETag": '"v2"'}))
        if path == "/b":  # stored without validators: asked for unconditionally
            assert b"If-None-Match" not in request.headers
        (page,) = [o for o in scrape(crawler, answer) if isinstance(o, Page)]
        marks[path] = (page.change, page.etag)
    assert marks == {"/b": ("unchanged", '"v2"'), "/c": ("changed", '"v2"'),
                     "/n": ("new", '"v2"')}


def test_a_previous_job_over_the_bound_is_recrawled_unmarked(database_url):
    previous, job = _previous(database_url)
    crawler, middleware = _recrawler(database_url, previous, job,
                                     CRAWLGRAPH_CONDITIONAL_MAX_PAGES=2)
    request = Request(ORIGIN + "/a")
    answer = _answer(middleware, request, HtmlResponse(ORIGIN + "/a", body=BODY,
                                                       request=request))
    assert b"If-None-Match" not in request.headers and not middleware.active
    assert crawler.stats.get_value("conditional/too_many_pages") == 1
    (page,) = [o for o in scrape(crawler, answer) if isinstance(o, Page)]
    assert page.change is None
