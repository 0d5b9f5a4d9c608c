"""The links of a page: every `<a href>` / `<area href>`, canonical, one per target.

`extract_links(response)` is what the Link items are made of (the pages
spider middleware) and what the `site` spider follows; a response's links are
extracted once and kept while the response lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from scrapy.http import Response, TextResponse
from scrapy.utils.response import get_base_url

from crawler.urls import resolve

_extracted: WeakKeyDictionary[Response, list[PageLink]] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class PageLink:
    """One target of a page: its URL, anchor text, `nofollow`, and how many anchors."""

    url: str
    text: str
    nofollow: bool
    count: int


def is_html(response: Response) -> bool:
    """An HTML page (by Content-Type, or by its first bytes when it has none)."""
    if not isinstance(response, TextResponse):
        return False
    ctype = (response.headers.get(b"Content-Type") or b"").lower()
    return b"html" in ctype or (not ctype and b"<html" in response.body[:1024].lower())


def extract_links(response: Response) -> list[PageLink]:
    """Every `<a href>` / `<area href>` of an HTML page, resolved against its base URL.

    A link is `nofollow` when every anchor to its target says so (`rel`), or
    the page's robots meta does.
    """
    links = _extracted.get(response)
    if links is None:
        links = _extracted[response] = _extract(response)
    return links


def _extract(response: Response) -> list[PageLink]:
    if not is_html(response):
        return []
    assert isinstance(response, TextResponse)
    base = get_base_url(response)
    robots_meta = " ".join(response.xpath(
        "//meta[translate(@name,'ROBTS','robts')='robots']/@content").getall()).lower()
    page_nofollow = "nofollow" in robots_meta or "none" in robots_meta
    found: dict[str, list[Any]] = {}
    for node in response.xpath("//a[@href] | //area[@href]"):
        url = resolve(base, node.attrib["href"])
        if url is None:
            continue
        rel = node.attrib.get("rel", "").lower().split()
        nofollow = page_nofollow or "nofollow" in rel
        text = " ".join(" ".join(node.xpath(".//text()").getall()).split()) or \
            node.attrib.get("alt", "").strip()
        entry = found.get(url)
        if entry is None:
            found[url] = [text, nofollow, 1]
        else:
            entry[0] = entry[0] or text
            entry[1] = entry[1] and nofollow  # followable if any anchor is
            entry[2] += 1
    return [PageLink(url, t[:1000], nf, n) for url, (t, nf, n) in found.items()]
