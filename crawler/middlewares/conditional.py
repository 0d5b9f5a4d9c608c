"""Conditional requests of a recrawl: ask only for what changed since the previous crawl.

A job with the `recrawl_of` argument (a job id; a schedule's fire sets it to
the series' previous finished job) recrawls that job. When the spider opens,
this middleware loads what the previous job stored of its pages (URL, status,
title, size, content hash, content type, canonical, `ETag`, `Last-Modified`)
into memory, off the reactor: at most ``CRAWLGRAPH_CONDITIONAL_MAX_PAGES``
(200,000 by default, some 60 MB). A larger previous job is not recrawled
conditionally (logged, stat `conditional/too_many_pages`): every page is
fetched and marked against nothing.

A request for a URL the previous job stored with validators gets
`If-None-Match` and `If-Modified-Since` (unless it has them). A `304` answer
to it is the previous page carried over: `previous(response)` gives the
pages middleware the stored row (`crawler.spidermiddlewares.pages` stores it
with `change = 'unchanged'`), and the previous job's links of the page are
read from PostgreSQL (one indexed query per 304, in this middleware's own
thread; `carried_links(response)`), which the pages middleware hands to
`crawler.spiders.links.carry_over` before the callback runs, so they are
stored again and followed like the links of a downloaded page (scope, depth
and budget apply). Stats: `conditional/previous_pages`, `…/sent`,
`…/not_modified`, `…/links_carried`.

Needs ``CRAWLGRAPH_DATABASE_URL``; on in `crawler.settings`, off with
``CRAWLGRAPH_CONDITIONAL_ENABLED = False``; a job that recrawls nothing
leaves it off.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Final, NamedTuple, Self
from weakref import WeakKeyDictionary

import psycopg
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response

from crawler.urls import canonicalize

logger = logging.getLogger(__name__)
_ATTR = "_crawlgraph_conditional"
_REDIRECTS = (301, 302, 303, 307, 308)

SELECT_PAGES: Final = """
SELECT url, final_url, status, content_type, title, size, content_hash, canonical_url,
       etag, last_modified
FROM pages WHERE job_id = %s LIMIT %s
"""
SELECT_LINKS: Final = """
SELECT t.url, l.anchor_text, l.nofollow, l.count
FROM links AS l JOIN urls AS t ON t.job_id = l.job_id AND t.id = l.target_id
WHERE l.job_id = %(job)s AND l.source_id = hashtextextended(%(source)s, 0)
ORDER BY t.url
"""


class Previous(NamedTuple):
    """What the previous job stored of a page (a row of its `pages`)."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    title: str | None
    size: int
    content_hash: str | None
    canonical_url: str | None
    etag: str | None
    last_modified: str | None


class CarriedLink(NamedTuple):
    """A link the previous job stored of a page (a row of its `links`)."""

    url: str
    text: str
    nofollow: bool
    count: int


class ConditionalMiddleware:
    """Downloader middleware sending a recrawl's conditional requests (module docstring)."""

    def __init__(self, crawler: Crawler, database_url: str, recrawl_of: str,
                 max_pages: int, strip_params: bool = True) -> None:
        self.crawler = crawler
        self.database_url = database_url
        self.recrawl_of = recrawl_of
        self.max_pages = max_pages
        self.strip_params = strip_params
        self.pages: dict[str, Previous] | None = None  # None until loaded, or too many
        self._seen: WeakKeyDictionary[Response, Previous | None] = WeakKeyDictionary()
        self._carried: WeakKeyDictionary[Response, list[CarriedLink]] = WeakKeyDictionary()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="crawlgraph-conditional")
        self._conn: psycopg.Connection | None = None
        crawler.signals.connect(self._opened, signals.spider_opened)
        crawler.signals.connect(self._closed, signals.spider_closed)
        setattr(crawler, _ATTR, self)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("CRAWLGRAPH_CONDITIONAL_ENABLED", True):
            raise NotConfigured("CRAWLGRAPH_CONDITIONAL_ENABLED is off")
        recrawl_of = getattr(getattr(crawler.spider, "args", None), "recrawl_of", None)
        if recrawl_of is None:
            raise NotConfigured("the job recrawls nothing")
        url = crawler.settings.get("CRAWLGRAPH_DATABASE_URL")
        if not url:
            raise NotConfigured("conditional requests need CRAWLGRAPH_DATABASE_URL")
        settings = crawler.settings
        return cls(crawler, url, recrawl_of,
                   settings.getint("CRAWLGRAPH_CONDITIONAL_MAX_PAGES", 200_000),
                   settings.getbool("CRAWLGRAPH_STRIP_SESSION_PARAMS", True))

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> ConditionalMiddleware | None:
        """The crawler's middleware, or None if the job recrawls nothing."""
        return getattr(crawler, _ATTR, None)

    @property
    def active(self) -> bool:
        """The previous job's pages are known: pages are compared with them."""
        return self.pages is not None

    def previous(self, response: Response) -> Previous | None:
        """The previous job's row of the page `response` answers (None: a new page)."""
        return self._seen.get(response)

    def carried_links(self, response: Response) -> list[CarriedLink] | None:
        """The previous job's links of a `304`'s page (None: the body was downloaded)."""
        return self._carried.get(response)

    async def _opened(self) -> None:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._executor, self._load_pages)
        stats = self.crawler.stats
        if len(rows) > self.max_pages:
            logger.warning("recrawl of %s: the previous job has more than %d pages "
                           "(CRAWLGRAPH_CONDITIONAL_MAX_PAGES): no conditional requests",
                           self.recrawl_of, self.max_pages)
            stats.set_value("conditional/too_many_pages", 1)
            return
        self.pages = {row.url: row for row in rows}
        stats.set_value("conditional/previous_pages", len(rows))

    def _closed(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._executor.submit(close)
        self._executor.shutdown(wait=True)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.database_url, connect_timeout=5, autocommit=True)
        return self._conn

    def _load_pages(self) -> list[Previous]:
        rows = self._connection().execute(SELECT_PAGES,
                                          (self.recrawl_of, self.max_pages + 1)).fetchall()
        return [Previous(*row) for row in rows]

    def _load_links(self, source: str) -> list[CarriedLink]:
        rows = self._connection().execute(SELECT_LINKS, {"job": self.recrawl_of,
                                                          "source": source}).fetchall()
        return [CarriedLink(*row) for row in rows]

    def _key(self, request: Request) -> str:
        first = (request.meta.get("redirect_urls") or [request.url])[0]
        return canonicalize(first, strip_params=self.strip_params)

    def process_request(self, request: Request) -> None:
        if self.pages is None:
            return
        prev = self.pages.get(self._key(request))
        if prev is None or not (prev.etag or prev.last_modified):
            return
        if prev.etag and b"If-None-Match" not in request.headers:
            request.headers[b"If-None-Match"] = prev.etag.encode("latin-1", "replace")
        if prev.last_modified and b"If-Modified-Since" not in request.headers:
            request.headers[b"If-Modified-Since"] = prev.last_modified.encode("latin-1",
                                                                               "replace")
        self.crawler.stats.inc_value("conditional/sent")

    async def process_response(self, request: Request, response: Response) -> Response:
        if self.pages is None or response.status in _REDIRECTS:
            return response
        prev = self.pages.get(self._key(request))
        self._seen[response] = prev
        if response.status == 304 and prev is not None:
            stats = self.crawler.stats
            stats.inc_value("conditional/not_modified")
            source = canonicalize(response.url, strip_params=self.strip_params)
            loop = asyncio.get_running_loop()
            links = await loop.run_in_executor(self._executor, self._load_links, source)
            stats.inc_value("conditional/links_carried", len(links))
            self._carried[response] = links
        return response
