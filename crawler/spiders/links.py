"""The links of a page: every `<a href>` / `<area href>`, canonical, one per target; and
the canonical URL the page declares.

`extract_links(response)` is what the Link items are made of (the pages
spider middleware) and what the `site` spider follows; a response's links are
extracted once and kept while the response lives. They keep session and
tracking parameters unless asked (`strip_params`): the canonical-URL spider
middleware strips a request's, and the pages middleware the stored links',
as ``CRAWLGRAPH_STRIP_SESSION_PARAMS`` says.

`declared_canonical(response)` is the page's `<link rel="canonical" href>`
(in its head, resolved against its base URL) or its HTTP
``Link: <...>; rel="canonical"`` header (resolved against its URL, any
content type): an http(s) URL of at most `MAX_CANONICAL_LENGTH` characters,
canonical like every stored URL. Anything else is ignored, and so are two
declarations that disagree (search engines ignore both too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from scrapy.http import Response, TextResponse
from scrapy.utils.response import get_base_url

from crawler.items import MAX_CANONICAL_LENGTH
from crawler.urls import resolve, strip_session_params

# A hostile server may send endless Link headers: read this much of them, no more.
_LINK_HEADER_CHARS = 8192
_LINK_VALUE = re.compile(r"<([^<>]*)>([^<]*)")
_REL_PARAM = re.compile(r';\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))', re.IGNORECASE)

_extracted: WeakKeyDictionary[Response, dict[bool, list[PageLink]]] = WeakKeyDictionary()


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


def extract_links(response: Response, *, strip_params: bool = False) -> list[PageLink]:
    """Every `<a href>` / `<area href>` of an HTML page, resolved against its base URL.

    A link is `nofollow` when every anchor to its target says so (`rel`), or
    the page's robots meta does. With `strip_params`, session and tracking
    parameters are removed and the links that then name one target are one.
    """
    cached = _extracted.get(response)
    if cached is None:
        cached = _extracted[response] = {False: _extract(response)}
    links = cached.get(strip_params)
    if links is None:
        links = cached[strip_params] = _merged(cached[False])
    return links


def carry_over(response: Response, links: list[PageLink]) -> None:
    """Make `links` the links of `response`, whose body was not downloaded (a recrawl's 304).

    They are what the previous crawl stored of the page (canonical already).
    """
    _extracted[response] = {False: links, True: links}


def _extract(response: Response) -> list[PageLink]:
    if not is_html(response):
        return []
    assert isinstance(response, TextResponse)
    base = get_base_url(response)
    robots_meta = " ".join(response.xpath(
        "//meta[translate(@name,'ROBTS','robts')='robots']/@content").getall()).lower()
    page_nofollow = "nofollow" in robots_meta or "none" in robots_meta
    found: dict[str, list[Any]] = {}
    # lxml's elements, not parsel's selectors: a selector and an XPath query per anchor
    # for its text cost five times `itertext` (the same text nodes, no comments).
    for node in response.selector.root.xpath("//a[@href] | //area[@href]"):
        url = resolve(base, node.get("href"), strip_params=False)
        if url is None:
            continue
        rel = (node.get("rel") or "").lower().split()
        text = " ".join(" ".join(node.itertext()).split()) or (node.get("alt") or "").strip()
        _add(found, url, text, page_nofollow or "nofollow" in rel, 1)
    return [PageLink(url, t[:1000], nf, n) for url, (t, nf, n) in found.items()]


def _add(found: dict[str, list[Any]], url: str, text: str, nofollow: bool, count: int) -> None:
    entry = found.get(url)
    if entry is None:
        found[url] = [text, nofollow, count]
    else:
        entry[0] = entry[0] or text
        entry[1] = entry[1] and nofollow  # followable if any anchor is
        entry[2] += count


def _merged(links: list[PageLink]) -> list[PageLink]:
    """`links` without session parameters; those that then coincide merged."""
    found: dict[str, list[Any]] = {}
    for link in links:
        _add(found, strip_session_params(link.url), link.text, link.nofollow, link.count)
    return [PageLink(url, t, nf, n) for url, (t, nf, n) in found.items()]


def declared_canonical(response: Response, *, strip_params: bool = True) -> str | None:
    """The canonical URL a response declares, or None (see the module docstring)."""
    found = {url for url in (
        *(resolve(response.url, href, strip_params=strip_params)
          for href in _header_canonicals(response)),
        *_html_canonicals(response, strip_params))
        if url is not None and len(url) <= MAX_CANONICAL_LENGTH}
    return found.pop() if len(found) == 1 else None


def _header_canonicals(response: Response) -> list[str]:
    text = ",".join(v.decode("latin-1") for v in response.headers.getlist(b"Link"))
    hrefs = []
    for match in _LINK_VALUE.finditer(text[:_LINK_HEADER_CHARS]):
        rel = _REL_PARAM.search(match.group(2))
        if rel and "canonical" in (rel.group(1) or rel.group(2) or "").lower().split():
            hrefs.append(match.group(1))
    return [h for h in hrefs if h.strip()]


def _html_canonicals(response: Response, strip_params: bool) -> list[str | None]:
    if not is_html(response):
        return []
    assert isinstance(response, TextResponse)
    base = get_base_url(response)
    out: list[str | None] = []
    for node in response.xpath("//head/link[@rel][@href]"):
        href = node.attrib["href"]
        if "canonical" in node.attrib["rel"].lower().split() and href.strip():
            out.append(resolve(base, href, strip_params=strip_params))
    return out
