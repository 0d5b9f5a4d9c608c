"""MaxDepthMiddleware: requests deeper than max_depth are dropped."""

from __future__ import annotations

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.http import Request

from crawler.spidermiddlewares.depth import MaxDepthMiddleware
from tests.spiders.kit import kit_crawler, page, scrape

START = "http://a.example/"


def links_out(crawler, depth: int) -> list[str]:
    response = page(f"{START}p/{depth}", meta={"depth": depth})
    out = scrape(crawler, response, [Request(f"{START}p/{depth + 1}")])
    return [r.url for r in out if isinstance(r, Request)]


def test_requests_beyond_max_depth_are_dropped_and_counted():
    crawler = kit_crawler({"start_urls": START, "max_depth": "2"})
    assert links_out(crawler, 0) == [f"{START}p/1"]
    assert links_out(crawler, 1) == [f"{START}p/2"]
    assert links_out(crawler, 2) == []
    assert crawler.stats.get_value("crawlgraph/too_deep") == 1
    # Scrapy's DepthMiddleware still numbers the levels.
    assert crawler.stats.get_value("request_depth_max") == 2


def test_max_depth_zero_fetches_the_start_pages_only():
    crawler = kit_crawler({"start_urls": START, "max_depth": "0"})
    assert links_out(crawler, 0) == []


def test_a_seed_without_depth_is_level_zero():
    crawler = kit_crawler({"start_urls": START, "max_depth": "1"})
    out = scrape(crawler, page(START), [Request(f"{START}p/1")])
    assert [r.meta["depth"] for r in out if isinstance(r, Request)] == [1]


def test_off_without_max_depth_or_when_switched_off():
    with pytest.raises(NotConfigured):
        MaxDepthMiddleware.from_crawler(kit_crawler({"start_urls": START}))
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_DEPTH_ENABLED"):
        MaxDepthMiddleware.from_crawler(kit_crawler({"start_urls": START, "max_depth": "1"},
                                                    {"CRAWLGRAPH_DEPTH_ENABLED": False}))
