"""RenderMiddleware: render_js marks requests, auto renders a page again, hops are Redirects."""

from __future__ import annotations

import pytest
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.http import Request

from crawler import rendering
from crawler.items import Redirect
from crawler.sitemaps import SITEMAP_META
from crawler.spidermiddlewares.render import RenderMiddleware
from tests.spiders.kit import kit_crawler, page, scrape, start

START = "http://a.example/"
EMPTY = "<html><body><div id=app></div><script>app()</script></body></html>"


def test_always_marks_start_callback_and_seeded_requests():
    crawler = kit_crawler({"start_urls": START, "render_js": "always"})
    assert all(rendering.is_marked(r.meta) for r in start(crawler))
    out = scrape(crawler, page(START, '<a href="/a">a</a>'), [Request(f"{START}a")])
    assert [rendering.is_marked(r.meta) for r in out if isinstance(r, Request)] == [True]
    mw = RenderMiddleware.from_crawler(crawler)
    seed = Request(START, meta={"depth": 0})  # the frontier's: no callback
    crawler.signals.send_catch_log(signals.request_reached_downloader, request=seed,
                                   spider=crawler.spider)
    assert rendering.is_marked(seed.meta) and mw.mode == "always"


def test_always_leaves_sitemap_files_to_the_spider():
    crawler = kit_crawler({"start_urls": START, "render_js": "always"})
    sitemap = Request(f"{START}sitemap.xml", meta={SITEMAP_META: True})
    (out,) = [o for o in scrape(crawler, page(START, "<p>x</p>"), [sitemap])
              if isinstance(o, Request)]
    assert not rendering.is_marked(out.meta)


def test_auto_fetches_a_script_page_again_rendered_and_yields_nothing_for_it():
    crawler = kit_crawler({"start_urls": START, "render_js": "auto"})
    assert scrape(crawler, page(START, EMPTY), [Request(f"{START}a")]) == []
    (again,) = crawler.engine.crawled
    assert again.url == START and rendering.is_marked(again.meta) and again.dont_filter
    assert crawler.stats.get_value("crawlgraph/render_retry") == 1
    # A page with text is a page as it is; so is the rendered one.
    assert scrape(crawler, page(START, "<p>text</p>"))
    assert scrape(crawler, page(START, EMPTY, meta=rendering.mark({})))
    assert len(crawler.engine.crawled) == 1


def test_auto_renders_a_page_without_the_selector():
    crawler = kit_crawler({"start_urls": START, "render_js": "auto",
                           "render_selector": "a.item"})
    assert scrape(crawler, page(START, '<p>text <a href="/x">x</a></p>')) == []
    assert len(crawler.engine.crawled) == 1


def test_off_for_never_or_when_switched_off():
    with pytest.raises(NotConfigured):
        RenderMiddleware.from_crawler(kit_crawler({"start_urls": START}))
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_RENDER_ENABLED"):
        RenderMiddleware.from_crawler(kit_crawler({"start_urls": START, "render_js": "auto"},
                                                  {"CRAWLGRAPH_RENDER_ENABLED": False}))


def test_a_rendered_pages_redirects_are_redirect_items():
    crawler = kit_crawler({"start_urls": START, "render_js": "always"})
    # Chromium followed /old -> /mid -> / (scrapy-playwright's redirect meta).
    meta = rendering.mark({"redirect_urls": [f"{START}old", f"{START}mid?utm_source=x"],
                           "redirect_reasons": [301, 302], "redirect_times": 2})
    out = scrape(crawler, page(START, "<p>landed</p>", meta=meta))
    hops = [o for o in out if isinstance(o, Redirect)]
    assert hops == [Redirect(url=f"{START}old", target_url=f"{START}mid", status=301),
                    Redirect(url=f"{START}mid", target_url=START, status=302)]
    assert crawler.stats.get_value("crawlgraph/redirects") == 2
    # A plain fetch's hops are made where Scrapy schedules them, not here.
    plain = scrape(crawler, page(START, "<p>x</p>", meta={"redirect_urls": [f"{START}old"],
                                                         "redirect_reasons": [301]}))
    assert not [o for o in plain if isinstance(o, Redirect)]


def test_no_redirect_items_with_the_pages_middleware_off():
    crawler = kit_crawler({"start_urls": START, "render_js": "always"},
                          {"CRAWLGRAPH_PAGES_ENABLED": False})
    meta = rendering.mark({"redirect_urls": [f"{START}old"], "redirect_reasons": [301]})
    assert not [o for o in scrape(crawler, page(START, "<p>x</p>", meta=meta))
                if isinstance(o, Redirect)]
