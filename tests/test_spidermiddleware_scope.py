"""ScopeMiddleware: start hosts and ports, allowed_domains, include/exclude."""

from __future__ import annotations

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.http import Request

from crawler.spidermiddlewares.scope import Scope, ScopeMiddleware
from crawler.spiders.site import SiteSpider
from tests.spiders.kit import PlainSpider, kit_crawler, page, scrape, start


def test_scope_by_host_and_port_or_domain():
    spider = Scope.of(SiteSpider(start_urls="http://127.0.0.1:8801/").args)
    assert "http://127.0.0.1:8801/a" in spider
    assert "http://127.0.0.1:8802/a" not in spider
    domains = Scope.of(SiteSpider(start_urls="http://www.example.org/",
                                  allowed_domains='["example.org", "127.0.0.1:9"]').args)
    assert "https://shop.example.org/x" in domains
    assert "http://127.0.0.1:9/x" in domains
    assert "http://127.0.0.1:10/x" not in domains
    assert "http://badexample.org/" not in domains
    assert "mailto:x@example.org" not in domains


def test_include_and_exclude_patterns():
    scope = Scope(["http://a.example/"], include=[r"/p/\d+$"], exclude=[r"/p/5$"])
    assert "http://a.example/p/1" in scope
    assert "http://a.example/p/5" not in scope
    assert "http://a.example/about" not in scope


def test_requests_leaving_the_scope_are_dropped_and_counted():
    crawler = kit_crawler({"start_urls": "http://a.example/"})
    response = page("http://a.example/", meta={"depth": 0})
    out = scrape(crawler, response, [Request("http://a.example/in"),
                                     Request("http://b.example/out"),
                                     Request("http://a.example:8080/other-port")])
    assert [r.url for r in out if isinstance(r, Request)] == ["http://a.example/in"]
    assert crawler.stats.get_value("crawlgraph/offsite") == 2


def test_start_requests_define_the_scope_and_pass():
    crawler = kit_crawler({"start_urls": '["http://a.example/", "http://b.example/"]',
                           "allowed_domains": "a.example"})
    assert [r.url for r in start(crawler)] == ["http://a.example/", "http://b.example/"]


def test_switched_off_and_spiders_outside_the_kit():
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_SCOPE_ENABLED"):
        ScopeMiddleware.from_crawler(kit_crawler({"start_urls": "http://a.example/"},
                                                 {"CRAWLGRAPH_SCOPE_ENABLED": False}))
    with pytest.raises(NotConfigured):
        ScopeMiddleware.from_crawler(kit_crawler({"start_urls": "http://a.example/"},
                                                 spidercls=PlainSpider))
