"""PageBudgetMiddleware: max_pages pages, then the spider closes."""

from __future__ import annotations

import pytest
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.http import Request

from crawler.items import Page
from crawler.spidermiddlewares.budget import PageBudgetMiddleware
from tests.spiders.kit import kit_crawler, page, scrape

START = "http://a.example/"


def test_the_budget_closes_the_spider_and_drops_what_follows():
    crawler = kit_crawler({"start_urls": START, "max_pages": "2"})
    first = scrape(crawler, page(f"{START}p/0"), [Request(f"{START}p/1")])
    assert [type(o).__name__ for o in first] == ["Page", "Request"]
    # The second page spends the budget: its own requests are dropped, and the
    # spider is told to close.
    with pytest.raises(CloseSpider) as closing:
        scrape(crawler, page(f"{START}p/1"), [Request(f"{START}p/2")])
    assert closing.value.reason == "max_pages"
    assert crawler.stats.get_value("crawlgraph/over_budget") == 1
    # A response arriving while the spider closes is no page at all.
    assert scrape(crawler, page(f"{START}p/2"), [Request(f"{START}p/3")]) == []


def test_pages_counted_are_the_page_items():
    crawler = kit_crawler({"start_urls": START, "max_pages": "1"},
                          {"CRAWLGRAPH_PAGES_ENABLED": False})
    # Without the pages middleware only the spider's own Page items count.
    assert len(scrape(crawler, page(START), [Request(f"{START}a")])) == 1
    with pytest.raises(CloseSpider):
        scrape(crawler, page(START), [Page(url=START, final_url=START, status=200,
                                           fetched_at=None), Request(f"{START}b")])


def test_off_without_max_pages_or_when_switched_off():
    with pytest.raises(NotConfigured):
        PageBudgetMiddleware.from_crawler(kit_crawler({"start_urls": START}))
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_BUDGET_ENABLED"):
        PageBudgetMiddleware.from_crawler(kit_crawler({"start_urls": START, "max_pages": "1"},
                                                      {"CRAWLGRAPH_BUDGET_ENABLED": False}))
