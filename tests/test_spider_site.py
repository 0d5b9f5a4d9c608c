"""The `site` spider against the mock server: faithful page and link sets, scope, arguments."""

from __future__ import annotations

import collections
import json

import pytest

from crawler.spiders.args import SpiderArgs, SpiderArgumentError, parse_args
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def final_urls(result) -> set[str]:
    return {p["final_url"] for p in result.pages}


def test_tricky_site_pages_and_links_equal_the_generated_site(mock_server):
    server = mock_server(pages=1000, seed=11, tricky=True)
    origin = server.origin
    result = run_crawl(SITE, {"start_urls": json.dumps([server.start_url])}, LOOPBACK,
                       timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    truth_pages = server.site.page_urls(origin)
    assert truth_pages == server.site.reachable(origin, follow_nofollow=False)
    assert final_urls(result) == truth_pages
    statuses = {p["final_url"]: p["status"] for p in result.pages}
    assert statuses == server.site.page_status(origin)
    links = {(link["source_url"], link["target_url"]) for link in result.links}
    assert links == server.site.link_set(origin)
    assert len(result.links) == len(links)  # one Link per (source, target) of a page
    nofollow = {(link["source_url"], link["target_url"]) for link in result.links
                if link["nofollow"]}
    assert nofollow == server.site.nofollow_links(origin)
    # Every page was fetched once, whatever spellings and redirects pointed at it,
    # and nothing outside the site (or its redirects) was requested.
    fetched = collections.Counter(r.path for r in server.requests() if r.path != "/robots.txt")
    assert max(fetched.values()) == 1
    redirects = set(server.site.redirects)
    assert set(fetched) <= {u[len(origin):] for u in truth_pages} | redirects
    # Redirected pages carry the URL asked for and the final one.
    moved = [p for p in result.pages if p["url"] != p["final_url"]]
    assert moved and all(server.site.redirect_urls(origin)[p["url"]] == p["final_url"]
                         for p in moved)
    page = next(p for p in result.pages if p["final_url"] == origin + "/p/1")
    assert page["title"] == "Page 1" and page["size"] > 0 and len(page["content_hash"]) == 64


def test_max_depth_include_exclude_and_max_pages(mock_server):
    server = mock_server(pages=30, links_per_page=1)  # a chain 0 -> 1 -> ... -> 29 -> 0
    origin = server.origin
    start = server.start_url
    depth = run_crawl(SITE, {"start_urls": start, "max_depth": "2"}, LOOPBACK)
    assert final_urls(depth) == {f"{origin}/p/{i}" for i in range(3)}
    # Links leaving the scope are stored, not followed.
    excluded = run_crawl(SITE, {"start_urls": start, "exclude": json.dumps([r"/p/5$"])},
                         LOOPBACK)
    assert final_urls(excluded) == {f"{origin}/p/{i}" for i in range(5)}
    assert (f"{origin}/p/4", f"{origin}/p/5") in {
        (link["source_url"], link["target_url"]) for link in excluded.links}
    assert "/p/5" not in server.paths()
    included = run_crawl(SITE, {"start_urls": start, "include": r"/p/[0-3]$"}, LOOPBACK)
    assert final_urls(included) == {f"{origin}/p/{i}" for i in range(4)}
    limited = run_crawl(SITE, {"start_urls": start, "max_pages": "7"}, LOOPBACK)
    assert len(limited.pages) == 7 and limited.reason == "max_pages"


def test_nofollow_links_are_stored_and_followed_only_when_asked(mock_server):
    server = mock_server(pages=300, seed=4, tricky=True)
    origin = server.origin
    site = server.site
    assert site.nofollow_links(origin)
    on = run_crawl(SITE, {"start_urls": server.start_url, "follow_nofollow": "true",
                          "max_depth": "1"}, LOOPBACK)
    off = run_crawl(SITE, {"start_urls": server.start_url, "max_depth": "1"}, LOOPBACK)
    assert final_urls(on) == site.reachable(origin, max_depth=1)
    assert final_urls(off) == site.reachable(origin, max_depth=1, follow_nofollow=False)


def test_error_responses_are_pages(mock_server):
    server = mock_server(pages=3)
    result = run_crawl(SITE, {"start_urls": json.dumps([server.url("/drop"),
                                                        server.url("/status/410")])},
                       {**LOOPBACK, "RETRY_TIMES": 1})
    by_url = {p["url"]: p for p in result.pages}
    assert by_url[server.url("/status/410")]["status"] == 410
    dropped = by_url[server.url("/drop")]
    assert dropped["status"] == 0 and dropped["error"]
    # Retried once by the kit; Twisted's connection pool may also retry a GET
    # once on a dropped connection.
    assert server.paths().count("/drop") in (2, 4)


@pytest.mark.parametrize(("args", "named"), [
    ({"start_urls": "http://127.0.0.1:1/", "colour": "blue"}, "colour"),
    ({"start_urls": "http://127.0.0.1:1/", "max_depth": "-1"}, "max_depth"),
    ({"start_urls": "http://127.0.0.1:1/", "include": "(unclosed"}, "include"),
    ({"start_urls": "http://127.0.0.1:1/", "exclude": '["ok", "[a-"]'}, "exclude"),
    ({"start_urls": "not a url"}, "start_urls"),
    ({"start_urls": "http://127.0.0.1:1/", "render_js": "sometimes"}, "render_js"),
    ({"start_urls": "http://127.0.0.1:1/", "max_pages": "many"}, "max_pages"),
])
def test_bad_arguments_name_the_parameter(args, named):
    with pytest.raises(SpiderArgumentError, match=named):
        parse_args(SpiderArgs, args)


def test_bad_arguments_close_the_crawl_with_a_reason(mock_server):
    server = mock_server(pages=3)
    result = run_crawl(SITE, {"start_urls": server.start_url, "max_depth": "-2"}, LOOPBACK)
    assert result.reason.startswith("bad_arguments: max_depth")
    assert result.pages == [] and server.requests() == []


def test_arguments_from_scrapyd_strings():
    args = parse_args(SpiderArgs, {
        "_job": "abc", "job_id": "2f0e7f8e-0c1f-4d3e-9a58-5b0cd3b1f001",
        "start_urls": '["http://a.example/", "http://b.example/x"]', "max_depth": "3",
        "follow_nofollow": "false", "obey_robots": "0", "render_js": "auto",
        "allowed_domains": "example.org"})
    assert args.start_urls == ["http://a.example/", "http://b.example/x"]
    assert args.max_depth == 3 and args.follow_nofollow is False and args.obey_robots is False
    assert args.allowed_domains == ["example.org"] and args.render_js == "auto"



def test_the_job_api_takes_the_spiders_crawl_parameters():
    from crawler.spiders.args import CrawlParams
    from jobapi.schemas import JobCreate

    crawl = CrawlParams.__struct_fields__
    assert SpiderArgs.__struct_fields__ == (*crawl, "job_id")
    assert JobCreate.__struct_fields__[:len(crawl)] == crawl
    assert issubclass(JobCreate, CrawlParams) and issubclass(SpiderArgs, CrawlParams)
