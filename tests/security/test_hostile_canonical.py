"""Scenario 17 (hostile pages), canonical URLs: what a page declares never costs the page.

A page's `<link rel="canonical">` and `Link` header are the site's text. Pages
declaring canonicals that are no http(s) URL, do not parse, are far longer than
the column's bound or hide in a flood of Link values go through the spider
kit (the pages middleware) into the real storage pipeline: every page must be
stored, with no canonical or an http(s) one within the bound, and none may
become a dead letter (which would lose the page). hypothesis then throws
arbitrary hrefs and header text at the extractor.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scrapy.http import HtmlResponse, Request, Response

from crawler.items import MAX_CANONICAL_LENGTH
from crawler.spiders.links import declared_canonical
from tests.hostile_pages import store_scraped

ORIGIN = "http://a.example"
LONG = ORIGIN + "/" + "x" * 5000
HOSTILE = {  # path -> (head, Link header values)
    "/js": ('<link rel="canonical" href="javascript:alert(1)">', []),
    "/data": ('<link rel="canonical" href="data:text/html,<b>x</b>">', []),
    "/mail": ("", ["<mailto:x@a.example>; rel=canonical"]),
    "/nohost": ('<link rel="canonical" href="http://:80/">', []),
    "/ipv6": ('<link rel="canonical" href="http://[::1">', []),
    "/long": (f'<link rel="canonical" href="{LONG}">', [f"<{LONG}>; rel=canonical"]),
    # Percent-encoding makes it longer than the bound only once canonical.
    "/grows": ('<link rel="canonical" href="/' + "\u00e9" * 500 + '">', []),
    "/nul": ('<link rel="canonical" href="/a\x00b">', []),
    "/flood": ("", [", ".join(["<http://a.example/x>; rel=next"] * 10_000)
                    + ", <http://a.example/m>; rel=canonical"]),
    "/two": ('<link rel="canonical" href="/one"><link rel="canonical" href="/two">', []),
    "/good": ('<link rel="canonical" href="/main">', ["<http://a.example/main>; rel=canonical"]),
}


def _response(path: str) -> Response:
    head, links = HOSTILE[path]
    url = ORIGIN + path
    body = f"<html><head>{head}</head><body><a href='/'>home</a></body></html>"
    return HtmlResponse(url, body=body.encode("utf-8", "surrogatepass"), request=Request(url),
                        headers={"Content-Type": "text/html; charset=utf-8", "Link": links})


@pytest.mark.scenario(17, done="pages declare hostile canonicals (<link rel=canonical> and Link "
                               "headers): javascript:, data:, mailto:, no host, broken IPv6, "
                               "5,000 characters, NUL, 10,000 Link values, two that disagree",
                      checked="every page is stored, none dead-lettered; canonical_url is NULL "
                              "or an http(s) URL of at most 2,048 characters; the good one kept")
def test_hostile_canonicals_never_cost_the_page(database_url):
    job, dead = store_scraped(database_url, ORIGIN, map(_response, HOSTILE))
    with psycopg.connect(database_url) as conn:
        stored = dict(conn.execute("SELECT url, canonical_url FROM pages WHERE job_id = %s",
                                   (job,)).fetchall())
    assert dead == 0
    assert set(stored) == {ORIGIN + path for path in HOSTILE}
    # The HTML parser drops a NUL, as it does in an href; the flood is read up to a bound.
    assert {url: c for url, c in stored.items() if c is not None} == {
        ORIGIN + "/good": ORIGIN + "/main", ORIGIN + "/nul": ORIGIN + "/ab"}


@settings(max_examples=300, deadline=None)
@given(href=st.text(max_size=300), header=st.text(max_size=400),
       base=st.sampled_from(["", '<base href="https://b.example/d/">', '<base href="::">']))
def test_any_declared_canonical_is_an_http_url_within_the_bound_or_none(href, header, base):
    escaped = href.replace("&", "&amp;").replace('"', "&quot;")
    body = f'<html><head>{base}<link rel="canonical" href="{escaped}"></head></html>'
    response = HtmlResponse(ORIGIN + "/p", body=body.encode("utf-8", "surrogatepass"),
                            request=Request(ORIGIN + "/p"),
                            headers={"Content-Type": "text/html; charset=utf-8",
                                     "Link": [header.encode("utf-8", "surrogatepass"),
                                              f"<{href}>; rel=canonical".encode(
                                                  "utf-8", "surrogatepass")]})
    found = declared_canonical(response)
    assert found is None or (found.startswith(("http://", "https://"))
                             and len(found) <= MAX_CANONICAL_LENGTH and "\x00" not in found)
