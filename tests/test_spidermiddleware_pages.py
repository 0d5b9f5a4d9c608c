"""PagesMiddleware and the kit's errback: a Page for every response and failure, Links."""

from __future__ import annotations

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse, Request
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from crawler.items import Link, Page, Redirect
from crawler.middlewares.robots import RobotsForbidden
from crawler.spidermiddlewares.pages import PagesMiddleware, redirect_hop
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


def test_a_failed_downloads_page_keeps_session_parameters_only_when_the_setting_says_so():
    request = Request(SESSION, meta={"redirect_urls": [START + "?_ga=2"]})
    for settings, expected in (({}, (START, "http://a.example/shop?id=7")),
                               ({"CRAWLGRAPH_STRIP_SESSION_PARAMS": False},
                                (START + "?_ga=2",
                                 "http://a.example/shop;jsessionid=0AF3?id=7&utm_source=news"))):
        spider = kit_crawler({"start_urls": START}, settings).spider
        (failed,) = spider.on_failure(failure(ConnectionRefusedError(), request))
        assert (failed.url, failed.final_url) == expected


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


def _page_of(crawler, response) -> Page:
    (found,) = [o for o in scrape(crawler, response) if isinstance(o, Page)]
    return found


def _canonical(head: str = "", *, url: str = START, links: list[str] | None = None,
               ctype: str = "text/html; charset=utf-8", body: str | None = None) -> str | None:
    crawler = kit_crawler({"start_urls": START})
    headers = {"Content-Type": ctype, "Link": links or []}
    text = body if body is not None else f"<html><head>{head}</head><body>x</body></html>"
    response = HtmlResponse(url, body=text.encode(), headers=headers, request=Request(url))
    return _page_of(crawler, response).canonical_url


def test_a_page_carries_the_canonical_url_it_declares():
    # Resolved against the base href, canonical like every URL.
    assert _canonical('<base href="http://a.example/dir/"><link rel="canonical" '
                      'href="../Main?b=2&a=1#top">') == "http://a.example/Main?a=1&b=2"
    # rel is a token list, any case; an HTTP Link header counts, for any content type.
    assert _canonical('<link rel="Alternate CANONICAL" href="/m">') == "http://a.example/m"
    assert _canonical(ctype="application/pdf", body="%PDF-1.4", links=[
        '<https://a.example/doc.html>; rel="preload", <https://a.example/doc>; rel=canonical'
    ]) == "https://a.example/doc"
    # The header and the head agreeing is one canonical; disagreeing is none.
    agree = '<link rel="canonical" href="https://a.example/doc">'
    assert _canonical(agree, links=['<https://a.example/doc>; rel="canonical"']) == \
        "https://a.example/doc"
    assert _canonical(agree + '<link rel="canonical" href="/other">') is None
    assert _canonical() is None and _canonical('<link rel="alternate" href="/m">') is None


def test_a_hostile_canonical_is_ignored():
    long = "http://a.example/" + "a" * 2100
    for head in ('<link rel="canonical" href="javascript:alert(1)">',
                 '<link rel="canonical" href="mailto:x@a.example">',
                 '<link rel="canonical" href="http://[::1">',
                 '<link rel="canonical" href="">', '<link rel="canonical" href="  ">',
                 '<link rel="canonical" href="http://:80/">',
                 f'<link rel="canonical" href="{long}">', '<link rel="canonical">'):
        assert _canonical(head) is None, head
    # Garbage beside a good one leaves the good one; a link in the body is no declaration.
    assert _canonical('<link rel="canonical" href="data:,x"><link rel="canonical" href="/m">') \
        == "http://a.example/m"
    assert _canonical(body='<html><head></head><body><link rel="canonical" href="/m">'
                           "</body></html>") is None
    for header in ('<javascript:x>; rel="canonical"', "<>; rel=canonical",
                   "https://a.example/m; rel=canonical", '<https://a.example/m>; rel="next"',
                   "<" * 5000, '<https://a.example/m>; title="<"; rel=canonical'):
        assert _canonical(links=[header]) is None, header
    # An endless header is read up to a bound.
    assert _canonical(links=[", ".join(["<https://a.example/x>; rel=next"] * 1000)
                             + ", <https://a.example/m>; rel=canonical"]) is None


SESSION = "http://a.example/shop;jsessionid=0AF3?utm_source=news&id=7"
SESSION_BODY = (f'<html><head><link rel="canonical" href="{SESSION}&PHPSESSID=1"></head><body>'
                f'<a href="{SESSION}">a</a><a href="/shop?id=7&gclid=9" rel="nofollow">b</a>'
                "</body></html>")


def _stored_urls(settings: dict) -> tuple[Page, list[Link], Redirect | None]:
    crawler = kit_crawler({"start_urls": START}, settings)
    response = page(SESSION, SESSION_BODY, meta={"redirect_urls": [START + "?sid=1&_ga=2"]})
    out = scrape(crawler, response)
    (stored,) = [o for o in out if isinstance(o, Page)]
    middleware = PagesMiddleware.from_crawler(crawler)  # what its request_scheduled hook uses
    hop = redirect_hop(Request(SESSION, meta={"redirect_urls": [START + "?_ga=2"]}),
                       strip_params=middleware.strip_params)
    return stored, [o for o in out if isinstance(o, Link)], hop


def test_stored_urls_lose_session_parameters_only_when_the_setting_says_so():
    stored, links, hop = _stored_urls({})
    assert (stored.url, stored.final_url, stored.canonical_url) == (
        START + "?sid=1", "http://a.example/shop?id=7", "http://a.example/shop?id=7")
    # The two anchors name one target once stripped: one link, followable, counted twice.
    assert [(x.source_url, x.target_url, x.count, x.nofollow) for x in links] == [
        ("http://a.example/shop?id=7", "http://a.example/shop?id=7", 2, False)]
    assert (hop.url, hop.target_url) == (START, "http://a.example/shop?id=7")

    kept = "http://a.example/shop;jsessionid=0AF3?id=7&utm_source=news"
    stored, links, hop = _stored_urls({"CRAWLGRAPH_STRIP_SESSION_PARAMS": False})
    assert (stored.url, stored.final_url, stored.canonical_url) == (
        START + "?_ga=2&sid=1", kept, kept.replace("?", "?PHPSESSID=1&"))
    assert [(x.source_url, x.target_url, x.count, x.nofollow) for x in links] == [
        (kept, kept, 1, False), (kept, "http://a.example/shop?gclid=9&id=7", 1, True)]
    assert (hop.url, hop.target_url) == (START + "?_ga=2", kept)


def test_the_site_spider_follows_links_as_written_and_the_setting_strips_its_requests():
    for settings, expected in (({}, {"http://a.example/shop?id=7"}),
                               ({"CRAWLGRAPH_STRIP_SESSION_PARAMS": False},
                                {"http://a.example/shop;jsessionid=0AF3?id=7&utm_source=news",
                                 "http://a.example/shop?gclid=9&id=7"})):
        crawler = kit_crawler({"start_urls": START, "follow_nofollow": "true"}, settings)
        response = page(SESSION, SESSION_BODY)
        followed = [o for o in scrape(crawler, response, crawler.spider.parse(response))
                    if isinstance(o, Request)]
        assert {r.url for r in followed} == expected
