"""Scenario 26 (hostile pages), recrawl validators: an ETag or Last-Modified never costs the page.

A page's `ETag` and `Last-Modified` are stored so that the next recrawl sends
them back (`crawler.middlewares.conditional`). A server may send them far
longer than the columns' bounds or with control characters (NUL, which
PostgreSQL text refuses; CR/LF that would split the request header they go
back in). Such pages go through the spider kit into the real storage
pipeline: every page must be stored, with the hostile validator dropped and
the good ones kept, and none may become a dead letter (which loses the page).
"""

from __future__ import annotations

import psycopg
import pytest
from scrapy.http import HtmlResponse, Request, Response

from tests.hostile_pages import store_scraped

ORIGIN = "http://a.example"
GOOD_DATE = "Wed, 02 Dec 2026 01:00:00 GMT"
HOSTILE = {  # path -> (ETag, Last-Modified)
    "/long-etag": ('"' + "x" * 10_000 + '"', GOOD_DATE),
    "/nul-etag": ('"a\x00b"', GOOD_DATE),
    "/cr-etag": ('"a\rSet-Cookie: x=1"', GOOD_DATE),
    "/long-date": ('"ok-1"', "Wed, " + "9" * 1_000),
    "/nul-date": ('"ok-2"', "Wed,\x00 02 Dec 2026"),
    "/good": ('W/"v1"', GOOD_DATE),
}
KEPT = {"/long-etag": (None, GOOD_DATE), "/nul-etag": (None, GOOD_DATE),
        "/cr-etag": (None, GOOD_DATE), "/long-date": ('"ok-1"', None),
        "/nul-date": ('"ok-2"', None), "/good": ('W/"v1"', GOOD_DATE)}


def _response(path: str) -> Response:
    etag, modified = HOSTILE[path]
    url = ORIGIN + path
    return HtmlResponse(url, body=b"<html><body><a href='/'>home</a></body></html>",
                        request=Request(url),
                        headers={"Content-Type": "text/html; charset=utf-8",
                                 "ETag": etag.encode("latin-1"),
                                 "Last-Modified": modified.encode("latin-1")})


@pytest.mark.scenario(26, done="pages send hostile validators: a 10,000-character ETag, NUL and "
                               "CR in an ETag, a 1,000-character and a NUL Last-Modified",
                      checked="every page is stored, none dead-lettered; the hostile validator "
                              "is NULL, the others kept as sent")
def test_hostile_validators_never_cost_the_page(database_url):
    job, dead = store_scraped(database_url, ORIGIN, map(_response, HOSTILE))
    with psycopg.connect(database_url) as conn:
        stored = {url: (etag, modified) for url, etag, modified in conn.execute(
            "SELECT url, etag, last_modified FROM pages WHERE job_id = %s", (job,)).fetchall()}
    assert dead == 0
    assert stored == {ORIGIN + path: kept for path, kept in KEPT.items()}
