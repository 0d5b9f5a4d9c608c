"""Requests survive the frontier as plain data (msgpack), callbacks by name."""

from __future__ import annotations

import pickle

import pytest
from scrapy import FormRequest, Request, Spider
from scrapy.http import JsonRequest

from crawler.frontier import FrontierError
from crawler.frontier.serialize import _as_dict, request_from_bytes, request_to_bytes


class _Spider(Spider):
    name = "s"

    def parse_item(self, response):  # pragma: no cover - only named
        return None

    def on_error(self, failure):  # pragma: no cover - only named
        return None


def test_request_round_trips_with_meta_headers_cookies_priority() -> None:
    spider = _Spider()
    request = Request(
        "http://a.test/p?q=1",
        callback=spider.parse_item,
        errback=spider.on_error,
        method="POST",
        body=b"x=1",
        headers={"X-Token": "abc", "Accept": ["a", "b"]},
        cookies={"session": "s1"},
        meta={"depth": 3, "nested": {"k": [1, 2.5, None, b"raw"]}, "download_slot": "a.test"},
        cb_kwargs={"page": 7},
        priority=-4,
        dont_filter=True,
        flags=["retried"],
    )
    back = request_from_bytes(request_to_bytes(request, spider), spider)
    assert back.url == request.url and back.method == "POST" and back.body == b"x=1"
    assert back.callback == spider.parse_item and back.errback == spider.on_error
    assert back.headers.getlist("Accept") == [b"a", b"b"]
    assert back.headers["X-Token"] == b"abc"
    assert back.cookies == {"session": "s1"}
    assert back.meta == {"depth": 3, "nested": {"k": [1, 2.5, None, b"raw"]}}
    assert back.cb_kwargs == {"page": 7}
    assert back.priority == -4 and back.dont_filter is True and back.flags == ["retried"]


def test_plain_request_is_compact_and_not_pickle() -> None:
    payload = request_to_bytes(Request("http://a.test/"))
    assert len(payload) < 40
    assert not payload.startswith(b"\x80")  # pickle's protocol marker
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(payload)
    assert request_from_bytes(payload).url == "http://a.test/"


def test_request_subclass_round_trips() -> None:
    request = FormRequest("http://a.test/f", formdata={"a": "1"})
    back = request_from_bytes(request_to_bytes(request))
    assert type(back) is FormRequest and back.body == b"a=1"


def test_unserializable_meta_is_refused_with_a_hint() -> None:
    with pytest.raises(FrontierError, match="plain data"):
        request_to_bytes(Request("http://a.test/", meta={"obj": object()}))


def test_foreign_request_class_is_refused() -> None:
    import msgspec

    payload = msgspec.msgpack.encode({"url": "http://a.test/", "_class": "os.system"})
    with pytest.raises(FrontierError, match="not allowed"):
        request_from_bytes(payload)


def test_callback_must_be_a_spider_method() -> None:
    with pytest.raises(ValueError):
        request_to_bytes(Request("http://a.test/", callback=lambda r: None), _Spider())


class _Child(_Spider):
    name = "child"
    alias = _Spider.parse_item  # one method under two names

    def parse(self, response):  # pragma: no cover - only named
        return None


@pytest.mark.parametrize("make", [
    lambda s: Request("http://a.test/", callback=s.parse_item, errback=s.on_error,
                      meta={"depth": 1}, priority=3),
    lambda s: Request("http://a.test/", callback=s.alias),
    lambda s: Request("http://a.test/", callback=s.parse, cb_kwargs={"k": 1}),
    lambda s: Request("http://a.test/"),
    lambda s: FormRequest("http://a.test/f", formdata={"a": "1"}, callback=s.parse_item),
    lambda s: JsonRequest("http://a.test/j", data={"a": 1}, errback=s.on_error),
])
def test_encoding_is_what_scrapy_to_dict_gives(make) -> None:
    """The fast path (callbacks found by name) gives what `Request.to_dict` gives; a
    method under two names may be named by either (both are the same function)."""
    spider = _Child()
    request = make(spider)

    def resolved(data: dict) -> dict:
        return {k: getattr(spider, v).__func__ if k in ("callback", "errback") and v else v
                for k, v in data.items()}

    assert resolved(_as_dict(request, spider)) == resolved(request.to_dict(spider=spider))
    back = request_from_bytes(request_to_bytes(request, spider), spider)
    assert back.callback == request.callback and back.errback == request.errback


def test_a_callback_of_another_object_is_still_refused() -> None:
    other = _Spider()
    with pytest.raises(ValueError):
        request_to_bytes(Request("http://a.test/", callback=other.parse_item), object())


def test_named_callbacks_are_found_without_listing_the_spider(monkeypatch) -> None:
    import inspect

    spider = _Child()

    def listed(*args, **kwargs):
        raise AssertionError("every member of the spider was listed")

    monkeypatch.setattr(inspect, "getmembers", listed)
    request = Request("http://a.test/", callback=spider.parse, errback=spider.on_error)
    back = request_from_bytes(request_to_bytes(request, spider), spider)
    assert back.callback == spider.parse and back.errback == spider.on_error
