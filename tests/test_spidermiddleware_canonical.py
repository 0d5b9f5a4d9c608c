"""CanonicalUrlMiddleware: every request of a kit spider gets its canonical URL."""

from __future__ import annotations

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.http import Request

from crawler.spidermiddlewares.canonical import CanonicalUrlMiddleware
from tests.spiders.kit import kit_crawler, page, scrape, start


def test_callback_and_start_requests_are_canonical():
    crawler = kit_crawler({"start_urls": "HTTP://A.example:80/x/../y?b=2&a=1#top"})
    assert [r.url for r in start(crawler)] == ["http://a.example/y?a=1&b=2"]
    out = scrape(crawler, page("http://a.example/"), [
        Request("http://a.example/%7Euser/./p#frag"), Request("http://a.example/same")])
    assert [r.url for r in out if isinstance(r, Request)] == [
        "http://a.example/~user/p", "http://a.example/same"]
    assert crawler.stats.get_value("crawlgraph/canonical/rewritten") == 2


def test_switched_off():
    crawler = kit_crawler({"start_urls": "http://a.example/"},
                          {"CRAWLGRAPH_CANONICAL_ENABLED": False})
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_CANONICAL_ENABLED"):
        CanonicalUrlMiddleware.from_crawler(crawler)
    assert [r.url for r in scrape(crawler, page("http://a.example/"),
                                  [Request("http://a.example/a#b")])
            if isinstance(r, Request)] == ["http://a.example/a#b"]


def test_session_and_tracking_parameters_are_stripped_unless_switched_off():
    written = "http://a.example/shop;jsessionid=0AF3?utm_source=news&id=7&PHPSESSID=x"
    crawler = kit_crawler({"start_urls": "http://a.example/"})
    out = scrape(crawler, page("http://a.example/"), [Request(written)])
    assert [r.url for r in out if isinstance(r, Request)] == ["http://a.example/shop?id=7"]

    kept = kit_crawler({"start_urls": "http://a.example/"},
                       {"CRAWLGRAPH_STRIP_SESSION_PARAMS": False})
    out = scrape(kept, page("http://a.example/"), [Request(written)])
    assert [r.url for r in out if isinstance(r, Request)] == [
        "http://a.example/shop;jsessionid=0AF3?PHPSESSID=x&id=7&utm_source=news"]
