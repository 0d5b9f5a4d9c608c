"""Frontier seeds get the spider's errback first, so a refused seed is still a page."""

from __future__ import annotations

from scrapy import Spider
from scrapy.http import Request
from scrapy.utils.test import get_crawler

from crawler.middlewares.seeds import SeedErrbackMiddleware
from crawler.spiders.site import SiteSpider

START = "http://a.example/"


def test_a_seed_gets_the_spiders_errback_and_other_requests_keep_theirs():
    crawler = get_crawler(SiteSpider, {})
    crawler.spider = crawler._create_spider(start_urls=START)
    middleware = SeedErrbackMiddleware.from_crawler(crawler)
    seed = Request(START)
    own = Request(f"{START}robots.txt", callback=lambda r: None)
    for request in (seed, own):
        assert middleware.process_request(request) is None
    assert seed.errback == crawler.spider.on_failure and own.errback is None


def test_off_for_spiders_outside_the_kit_and_by_setting():
    import pytest
    from scrapy.exceptions import NotConfigured

    plain = get_crawler(Spider, {})
    plain.spider = plain._create_spider(name="plain")
    with pytest.raises(NotConfigured):
        SeedErrbackMiddleware.from_crawler(plain)
    off = get_crawler(SiteSpider, {"CRAWLGRAPH_SEEDS_ENABLED": False})
    off.spider = off._create_spider(start_urls=START)
    with pytest.raises(NotConfigured):
        SeedErrbackMiddleware.from_crawler(off)
