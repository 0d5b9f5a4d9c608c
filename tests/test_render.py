"""JavaScript pages rendered in the system's Chromium through scrapy-playwright."""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import psycopg
import pytest

from crawler.rendering import needs_render
from crawler.urls import canonicalize
from tests.crawlrun import run_crawl
from tests.graphdata import make_job, make_user
from tests.websites import OTHER_CA, WRONG_NAME, websites_fixture  # noqa: F401

pytestmark = pytest.mark.browser

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def crawl_js(server, render_js: str, path: str = "/js", **extra: str):
    args = {"start_urls": json.dumps([server.url(path)]), "max_depth": "1",
            "render_js": render_js, **extra}
    return run_crawl(SITE, args, LOOPBACK, timeout=180)


def js_targets(server) -> set[str]:
    return {server.url(p) for p in server.site.js_links}


def test_js_links_found_with_always_and_auto_not_never(mock_server):
    server = mock_server(pages=5)
    source = server.url("/js")
    for mode, expect_found in [("never", False), ("always", True), ("auto", True)]:
        result = crawl_js(server, mode)
        assert result.reason == "finished", result.log[-2000:]
        links = {link["target_url"] for link in result.links if link["source_url"] == source}
        pages = {p["final_url"] for p in result.pages}
        if expect_found:
            assert links == js_targets(server), mode
            assert js_targets(server) <= pages, mode
            js_page = next(p for p in result.pages if p["url"] == source)
            assert js_page["rendered"] is True
            assert js_page["title"] == "Loading"
        else:
            assert links == set() and pages == {source}
            assert result.pages[0]["rendered"] is False
    # auto renders only what needs it: the targets are plain pages with text.
    result = crawl_js(server, "auto")
    rendered = {p["final_url"] for p in result.pages if p["rendered"]}
    assert rendered == {source}


def test_auto_renders_when_the_selector_is_missing(mock_server):
    server = mock_server(pages=5)
    without = crawl_js(server, "auto", "/js-partial")
    with_selector = crawl_js(server, "auto", "/js-partial", render_selector=".js-link")
    source = server.url("/js-partial")
    # Static text and a link: auto alone does not render; the selector forces it.
    assert not {link["target_url"] for link in without.links} & js_targets(server)
    assert {link["target_url"] for link in with_selector.links
            if link["source_url"] == source} >= js_targets(server)


def test_needs_render_rules():
    from scrapy.http import HtmlResponse, Request

    def response(body: str) -> HtmlResponse:
        return HtmlResponse("http://h/", body=body.encode(), request=Request("http://h/"),
                            headers={"Content-Type": "text/html"})

    empty = response("<html><body><div id=app></div><script>x()</script></body></html>")
    text = response("<html><body><p>hello</p></body></html>")
    assert needs_render(empty, "auto") and not needs_render(empty, "never")
    assert not needs_render(text, "auto")
    assert needs_render(text, "auto", "a.item")


def test_browser_contexts_are_recycled(mock_server):
    server = mock_server(pages=8, links_per_page=2)
    result = run_crawl(SITE, {"start_urls": server.start_url, "render_js": "always"},
                       {**LOOPBACK, "CRAWLGRAPH_RENDER_CONTEXT_PAGES": 3}, timeout=180)
    assert {p["final_url"] for p in result.pages} == server.site.page_urls(server.origin)
    assert all(p["rendered"] for p in result.pages)
    assert result.stats["rendering/context_recycled"] == 2  # after pages 3 and 6
    assert result.stats["playwright/context_count"] >= 3


def _stored(database_url: str, redis_url: str, start_url: str, render_js: str):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn, f"user-{render_js}"), status="running")
    result = run_crawl(SITE, {"job_id": str(job), "start_urls": json.dumps([start_url]),
                              "max_depth": "0", "render_js": render_js},
                       {**LOOPBACK, "CRAWLGRAPH_DATABASE_URL": database_url,
                        "CRAWLGRAPH_REDIS_URL": redis_url}, stack=True, timeout=180)
    assert result.reason == "finished", result.log[-3000:]
    with psycopg.connect(database_url) as conn:
        hops = conn.execute("SELECT url, target_url, status FROM redirects WHERE job_id = %s",
                            (job,)).fetchall()
        pages = conn.execute("SELECT url, final_url, status, rendered FROM pages "
                             "WHERE job_id = %s", (job,)).fetchall()
    return set(hops), pages


def test_a_rendered_page_behind_a_301_stores_its_redirect_as_a_plain_fetch_does(
        mock_server, database_url, redis_url):
    server = mock_server(pages=3)
    landing = server.start_url
    start = server.url(f"/redirect?to={quote(landing, safe='')}&status=301")
    plain_hops, plain_pages = _stored(database_url, redis_url, start, "never")
    hops, pages = _stored(database_url, redis_url, start, "always")
    assert hops == plain_hops == {(canonicalize(start), canonicalize(landing), 301)}
    assert [p[:3] for p in pages] == [p[:3] for p in plain_pages] \
        == [(canonicalize(start), canonicalize(landing), 200)]
    assert pages[0][3] is True and plain_pages[0][3] is False


def test_named_https_sites_render_with_the_ca_bundle_checked_as_plain_fetches_are(websites):
    sites = websites(pages=5)
    home = sites.world.home("example.test")
    starts = [home, f"https://{OTHER_CA}/", f"https://{WRONG_NAME}/"]
    result = run_crawl(SITE, {"start_urls": json.dumps(starts), "render_js": "always"},
                       {**sites.settings, "RETRY_TIMES": 0}, timeout=180)
    assert result.reason == "finished", result.log[-3000:]
    answered = {p["final_url"] for p in result.pages if p["status"] == 200}
    assert answered == sites.world.page_urls("example.test")
    assert all(p["rendered"] for p in result.pages)
    # Chromium reached each page through the proxy, by name (TLS SNI), on the mapped port.
    https = [r for r in sites.requests() if r.scheme == "https"]
    assert {r.sni for r in https} >= {urlsplit(home).hostname}
    pages = {p["url"]: p for p in result.pages}
    other, wrong = pages[f"https://{OTHER_CA}/"], pages[f"https://{WRONG_NAME}/"]
    assert other["status"] == 0 and other["error"].startswith("tls: "), other
    assert "certificate verify failed" in other["error"]
    assert wrong["status"] == 0 and wrong["error"].startswith("tls: "), wrong
    assert "match" in wrong["error"], wrong
