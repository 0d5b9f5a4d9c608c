"""`follow`: a minimal link-following spider (the frontier's and the storage's tests).

    export SCRAPY_SETTINGS_MODULE=tests.spiders.settings
    scrapy crawl follow -a job_id=UUID -a start_urls=http://host:port/p/0

A plain Scrapy spider, outside the kit: it makes its own items, and the kit's
spider middlewares leave it alone.

It stays on the hosts *and ports* of its start URLs (or of ``-a allow=host:port,...``),
follows every in-scope ``<a href>`` (also nofollow ones), and yields a `Page`
for every response or failure and one `Link` per (source, target) pair with the
number of anchors. Optional: ``-a max_depth=N``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urldefrag, urlsplit

from scrapy import Request, Spider
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure

from crawler.items import Link, Page


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


class FollowSpider(Spider):
    name = "follow"

    def __init__(self, *args: Any, start_urls: str | list[str] = "", allow: str = "",
                 max_depth: str | int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        urls = start_urls.split(",") if isinstance(start_urls, str) else list(start_urls)
        self.start_urls = [u.strip() for u in urls if u.strip()]
        self.allowed_netlocs = {a.strip() for a in allow.split(",") if a.strip()} or {
            _netloc(u) for u in self.start_urls
        }
        self.max_depth = int(max_depth) if max_depth not in (None, "") else None

    async def start(self) -> AsyncIterator[Request]:
        # Several workers of one job all yield these: the frontier keeps one each.
        for url in self.start_urls:
            yield Request(url, callback=self.parse, errback=self.failed, meta={"depth": 0})

    def parse(self, response: Response) -> Iterator[Any]:
        request = response.request
        yield Page(
            url=(response.meta.get("redirect_urls") or [request.url])[0],
            final_url=response.url,
            status=response.status,
            content_type=_header(response, b"Content-Type"),
            title=_title(response),
            depth=response.meta.get("depth", 0),
            fetched_at=datetime.now(UTC),
            size=len(response.body),
            content_hash=hashlib.sha256(response.body).hexdigest(),
            elapsed_ms=int(response.meta.get("download_latency", 0) * 1000),
        )
        if not isinstance(response, TextResponse):
            return
        links: dict[str, list[Any]] = {}
        for anchor in response.css("a[href]"):
            href = anchor.attrib["href"].strip()
            target = urldefrag(response.urljoin(href))[0]
            if not target.startswith(("http://", "https://")):
                continue
            text = " ".join(anchor.css("::text").getall()).strip()[:500]
            nofollow = "nofollow" in anchor.attrib.get("rel", "").lower().split()
            entry = links.setdefault(target, [0, text, True])
            entry[0] += 1
            entry[2] = entry[2] and nofollow  # followed if any anchor is followable
        depth = response.meta.get("depth", 0)
        for target, (count, text, nofollow) in links.items():
            yield Link(source_url=response.url, target_url=target, anchor_text=text,
                       nofollow=nofollow, count=count)
            if _netloc(target) in self.allowed_netlocs and (
                self.max_depth is None or depth < self.max_depth
            ):
                yield Request(target, callback=self.parse, errback=self.failed)

    def failed(self, failure: Failure) -> Iterator[Page]:
        request = failure.request
        response = getattr(failure.value, "response", None)
        yield Page(
            url=(request.meta.get("redirect_urls") or [request.url])[0],
            final_url=request.url,
            status=response.status if response is not None else 0,
            depth=request.meta.get("depth", 0),
            fetched_at=datetime.now(UTC),
            error=f"{failure.type.__name__}: {failure.getErrorMessage()}"[:1000],
        )


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def _title(response: Response) -> str | None:
    if not isinstance(response, TextResponse):
        return None
    title = response.css("title::text").get()
    return title.strip() if title else None
