"""PagesMiddleware and the kit's errback: a Page for every response and failure, Links."""

from __future__ import annotations

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.http import Request
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from crawler.items import Link, Page
from crawler.middlewares.robots import RobotsForbidden
from crawler.spidermiddlewares.pages import PagesMiddleware
from tests.spiders.kit import PlainSpider, kit_crawler, page, scrape, start

START = "http://a.example/"
BODY = """<html><head><title> The  page </title><base href="http://a.example/dir/"></head>
<body><a href="x">one</a> <a href="x#f">two</a> <a href="http://b.example/" rel="nofollow">b</a>
<area href="/map" alt="Map"><a href="mailto:x@a.example">mail</a></body></html>"""


def failure(exc: Exception, request: Request) -> Failure:
    try:
        raise exc
    except Exception:
        failed = Failure()
    failed.request = request
    return failed


def test_a_page_and_its_links_come_before_the_callback_output():
    crawler = kit_crawler({"start_urls": START})
    response = page(START, BODY, meta={"depth": 3, "download_latency": 0.25})
    out = scrape(crawler, response, [{"item": 1}])
    first, *links, item = out
    assert isinstance(first, Page) and item == {"item": 1}
    assert (first.url, first.final_url, first.status, first.title, first.depth,
            first.elapsed_ms, first.size) == (START, START, 200, "The page", 3, 250,
                                              len(BODY.encode()))
    assert [(link.target_url, link.anchor_text, link.nofollow, link.count) for link in links
            if isinstance(link, Link)] == [
        ("http://a.example/dir/x", "one", False, 2),
        ("http://b.example/", "b", True, 1),
        ("http://a.example/map", "Map", False, 1)]
    assert (crawler.stats.get_value("crawlgraph/pages"),
            crawler.stats.get_value("crawlgraph/links")) == (1, 3)


def test_redirected_and_non_html_responses_are_pages():
    crawler = kit_crawler({"start_urls": START})
    response = page(f"{START}new", meta={"redirect_urls": [f"{START}old"]})
    (moved,) = [o for o in scrape(crawler, response) if isinstance(o, Page)]
    assert (moved.url, moved.final_url) == (f"{START}old", f"{START}new")
    crawler = kit_crawler({"start_urls": START}, {"CRAWLGRAPH_PAGES_LINKS": False})
    assert [type(o) for o in scrape(crawler, page(START, BODY))] == [Page]


def test_requests_without_an_errback_get_the_spiders():
    crawler = kit_crawler({"start_urls": START})
    spider = crawler.spider
    (first,) = start(crawler)
    assert first.errback == spider.on_failure and first.callback == spider.parse
    own = Request(f"{START}own", errback=spider.parse)
    out = [o for o in scrape(crawler, page(START), [Request(f"{START}a"), own])
           if isinstance(o, Request)]
    assert [r.errback for r in out] == [spider.on_failure, spider.parse]


def test_a_failed_download_is_a_page_and_a_refusal_is_none():
    crawler = kit_crawler({"start_urls": START})
    spider = crawler.spider
    request = Request(f"{START}new", meta={"depth": 2, "redirect_urls": [f"{START}old"]})
    (failed,) = spider.on_failure(failure(ConnectionRefusedError(), request))
    assert (failed.url, failed.final_url, failed.status, failed.depth) == (
        f"{START}old", f"{START}new", 0, 2)
    # The error says its cause and host first (crawler.failures), then the exception.
    assert failed.error.startswith("refused: a.example: the connection was refused (")
    assert "ConnectionRefusedError" in failed.error
    assert crawler.stats.get_value("crawlgraph/error/ConnectionRefusedError") == 1
    assert crawler.stats.get_value("crawlgraph/error_cause/refused") == 1
    assert list(spider.on_failure(failure(RobotsForbidden("no"), request))) == []


def test_an_unhandled_status_goes_to_the_callback():
    crawler = kit_crawler({"start_urls": START})
    response = page(START, '<a href="/next">next</a>', status=301)
    response.request.callback = crawler.spider.parse
    out = list(crawler.spider.on_failure(failure(HttpError(response), response.request)))
    assert [r.url for r in out] == [f"{START}next"]


def test_off_for_spiders_outside_the_kit_or_when_switched_off():
    with pytest.raises(NotConfigured):
        PagesMiddleware.from_crawler(kit_crawler({"start_urls": START},
                                                 spidercls=PlainSpider))
    crawler = kit_crawler({"start_urls": START}, {"CRAWLGRAPH_PAGES_ENABLED": False})
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_PAGES_ENABLED"):
        PagesMiddleware.from_crawler(crawler)
    assert scrape(crawler, page(START, BODY)) == []
