"""One page, one node: redirect hops stored by the crawl.

Every redirect Scrapy follows is a `redirects` row (the pages middleware, the
rows, the store, the migration).
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from scrapy import signals
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware, RedirectMiddleware
from scrapy.http import HtmlResponse, Request

from crawler.items import Redirect
from crawler.pipelines.rows import RowError, to_row
from crawler.pipelines.storage import StoragePipeline
from crawler.pipelines.store import PostgresStore
from tests.graphdata import make_job, make_user
from tests.spiders.kit import kit_crawler, page, scrape

# --- the crawl stores every hop -------------------------------------------------------------

def _redirected(middleware, request: Request, status: int, location: str) -> Request:
    response = HtmlResponse(request.url, status=status, headers={"Location": location},
                            request=request)
    out = middleware.process_response(request, response)
    assert isinstance(out, Request)
    return out


def _hops(database_url: str, job: uuid.UUID) -> set[tuple[str, str, int | None]]:
    with psycopg.connect(database_url) as conn:
        return set(conn.execute("SELECT url, target_url, status FROM redirects "
                                "WHERE job_id = %s", (job,)).fetchall())


def test_every_redirect_scheduled_is_a_stored_hop(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
    crawler = kit_crawler({"start_urls": "http://a.example/", "job_id": str(job)},
                          {"CRAWLGRAPH_DATABASE_URL": database_url})
    storage = StoragePipeline.from_crawler(crawler)
    redirects = RedirectMiddleware.from_crawler(crawler)
    refresh = MetaRefreshMiddleware.from_crawler(crawler)

    # http://a.example/x -> /x/ (301) -> https://a.example/x/ (302).
    first = _redirected(redirects, Request("http://a.example/x"), 301, "/x/")
    second = _redirected(redirects, first, 302, "https://a.example/x/")
    moved = HtmlResponse("http://a.example/old", request=Request("http://a.example/old"),
                         body=b'<html><head><meta http-equiv="refresh" content="0; url=/new">'
                              b"</head></html>")
    refreshed = refresh.process_response(moved.request, moved)
    # The same URL spelled another way is no hop.
    same = _redirected(redirects, Request("http://a.example/p?b=1&a=2"), 301,
                       "http://A.example/p?a=2&b=1")
    # A callback that copies a redirected response's meta into its request follows no redirect.
    landed = page("https://a.example/x/", '<a href="/y">y</a>', meta=dict(second.meta))
    (copied,) = [o for o in scrape(crawler, landed, [Request("http://a.example/z",
                                                             meta=dict(second.meta))])
                 if isinstance(o, Request)]

    async def crawl() -> None:
        await storage.open_spider()
        for request in (first, second, refreshed, same, copied, second.copy()):  # a retry too
            crawler.signals.send_catch_log(signals.request_scheduled, request=request,
                                           spider=crawler.spider)
        await storage.close_spider()

    asyncio.run(crawl())
    assert _hops(database_url, job) == {
        ("http://a.example/x", "http://a.example/x/", 301),
        ("http://a.example/x/", "https://a.example/x/", 302),
        ("http://a.example/old", "http://a.example/new", None),
    }
    assert crawler.stats.get_value("crawlgraph/redirects") == 4


def test_hops_are_replaced_and_a_bad_one_is_a_dead_letter(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
    writer = PostgresStore(database_url, str(job))
    try:
        writer.write([to_row(Redirect(url="http://a.test/", target_url="https://a.test/",
                                      status=302))])
        with pytest.raises(RowError) as bad:
            to_row(Redirect(url="http://a.test/m", target_url="mailto:x@a.test", status=301))
        result = writer.write(
            [to_row(Redirect(url="http://a.test/", target_url="https://www.a.test/",
                             status=301))],
            dead=[(bad.value.kind, bad.value.payload, str(bad.value))])
    finally:
        writer.close()
    assert result.stored == 1
    assert _hops(database_url, job) == {("http://a.test/", "https://www.a.test/", 301)}
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT kind FROM dead_letters WHERE job_id = %s",
                            (job,)).fetchall() == [("redirect",)]
