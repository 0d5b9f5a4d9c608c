"""Page, Link and Redirect items: every response, hyperlink and redirect hop is stored.

Before a callback's own output, the output of every response of a kit spider
starts with its `Page` item (status, URL asked for and final URL after
redirects, title, size, hash, latency, depth, whether it was rendered) and
one `Link` item per target of its `<a href>` / `<area href>`
(`crawler.spiders.links`), in scope or not, followed or not.

A failed download has no response to pass here: the spider's errback
`CrawlgraphSpider.on_failure` stores its Page. This middleware gives that
errback to every request without one, those of the spider's start and
callbacks (the frontier's seeds, which have neither, get it from
`crawler.middlewares.seeds` before any downloader middleware can refuse
them). Stats: `crawlgraph/pages` and `crawlgraph/links` (items made here;
a failed download's Page counts under `crawlgraph/error/<exception>`).

Every redirect Scrapy follows (`RedirectMiddleware`, `MetaRefreshMiddleware`)
is a `Redirect` item (the URL that redirected, where to, the status), made
when the request it leads to is scheduled (`request_scheduled`), whether or
not that request is ever fetched: a redirect to a URL the frontier already
knows is dropped as a duplicate and never reaches the spider, so no response
could carry it. It goes straight to the storage pipeline
(`StoragePipeline.for_crawler`) in that same engine step, before the request
that redirected is done, so that request's lease is acknowledged only once
the hop is committed; without the pipeline it is only counted
(`crawlgraph/redirects`). A request a callback yields with a redirected
response's meta copied into it is not a redirect.

A response carries how the crawl reached its URL into its Page
(`discovered`): the request's `crawlgraph_discovered` meta if it has one
(`sitemap`, set by the `site` spider), else `start` at depth 0 and `link`
deeper. A Page also carries the canonical URL its response declares
(`canonical_url`: `crawler.spiders.links.declared_canonical`). A response
whose request has the `crawlgraph_sitemap` meta (a sitemap file the spider
reads) is not a page: it gets no Page, no Links, and its redirects are no
Redirect items.

Every URL stored (page, final, link, hop, canonical) is canonical
(`crawler.urls.canonicalize`); session and tracking parameters are removed
from them unless ``CRAWLGRAPH_STRIP_SESSION_PARAMS`` is False, as from the
requests (`crawler.spidermiddlewares.canonical`).

A page of a recrawl (`crawler.middlewares.conditional`) is marked against
the crawl it recrawls (`change`): a `304` answer to a conditional request is
the previous page carried over (its status, title, size, hash, content type,
canonical and validators) and `unchanged`; a downloaded page is `unchanged`
or `changed` by its content hash, and `new` if the previous crawl did not
store its URL. A page keeps its `ETag` and `Last-Modified` (up to 512 and
64 characters; longer ones, and any with a control character, are dropped)
for the next recrawl.

On in `crawler.settings`; off with `CRAWLGRAPH_PAGES_ENABLED = False`;
`CRAWLGRAPH_PAGES_LINKS = False` stores pages without their links.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Self
from weakref import WeakSet

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response

from crawler import rendering
from crawler.items import MAX_ETAG_LENGTH, MAX_LAST_MODIFIED_LENGTH, Link, Page, Redirect
from crawler.middlewares.conditional import ConditionalMiddleware, Previous
from crawler.pipelines.storage import StoragePipeline
from crawler.sitemaps import SITEMAP_META, discovery
from crawler.spidermiddlewares import kit_spider
from crawler.spiders.links import PageLink, carry_over, declared_canonical, extract_links, is_html
from crawler.urls import canonicalize

_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _header(response: Response, name: bytes, limit: int) -> str | None:
    """A validator header as sent (it goes back in the next recrawl's request), or None
    if longer than `limit` or holding a control character (NUL, CR, LF, ...)."""
    value = response.headers.get(name)
    if not value or len(value) > limit or _CONTROL.search(value):
        return None
    return value.decode("latin-1")


def response_page(response: Response, *, strip_params: bool = True) -> Page:
    """The Page item of a response (URLs without session parameters unless not `strip_params`)."""
    first = (response.meta.get("redirect_urls") or [response.url])[0]
    ctype = response.headers.get(b"Content-Type")
    title = None
    if is_html(response):
        title = response.css("title::text").get()
        title = " ".join(title.split()) if title else None
    latency = response.meta.get("download_latency")
    return Page(
        url=canonicalize(first, strip_params=strip_params),
        final_url=canonicalize(response.url, strip_params=strip_params),
        status=response.status, fetched_at=datetime.now(UTC),
        content_type=ctype.decode("latin-1") if ctype else None, title=title,
        depth=response.meta.get("depth", 0), size=len(response.body),
        content_hash=hashlib.sha256(response.body).hexdigest(),
        elapsed_ms=int(latency * 1000) if latency is not None else None,
        rendered=rendering.is_marked(response.meta), discovered=discovery(response.meta),
        canonical_url=declared_canonical(response, strip_params=strip_params),
        etag=_header(response, b"ETag", MAX_ETAG_LENGTH),
        last_modified=_header(response, b"Last-Modified", MAX_LAST_MODIFIED_LENGTH))


def carried_page(response: Response, prev: Previous, *, strip_params: bool = True) -> Page:
    """The Page of a recrawl's `304`: the previous crawl's page, fetched now."""
    latency = response.meta.get("download_latency")
    return Page(
        url=prev.url, final_url=canonicalize(response.url, strip_params=strip_params),
        status=prev.status, fetched_at=datetime.now(UTC), content_type=prev.content_type,
        title=prev.title, depth=response.meta.get("depth", 0), size=prev.size,
        content_hash=prev.content_hash,
        elapsed_ms=int(latency * 1000) if latency is not None else None,
        rendered=rendering.is_marked(response.meta), discovered=discovery(response.meta),
        canonical_url=prev.canonical_url,
        etag=_header(response, b"ETag", MAX_ETAG_LENGTH) or prev.etag,
        last_modified=(_header(response, b"Last-Modified", MAX_LAST_MODIFIED_LENGTH)
                       or prev.last_modified),
        change="unchanged")


def compared(page: Page, prev: Previous | None) -> Page:
    """`page` of a recrawl marked against the previous crawl's row of its URL."""
    if prev is None:
        page.change = "new"
    else:
        page.change = "unchanged" if prev.content_hash == page.content_hash else "changed"
    return page


def redirect_hop(request: Request, *, strip_params: bool = True) -> Redirect | None:
    """The hop a request made by Scrapy's redirect middlewares follows (None: not a hop).

    The middlewares append the URL that redirected to `redirect_urls` and the
    status (or "meta refresh") to `redirect_reasons`.
    """
    urls = request.meta.get("redirect_urls")
    if not urls:
        return None
    reasons = request.meta.get("redirect_reasons") or ()
    return _hop(canonicalize(urls[-1], strip_params=strip_params),
                canonicalize(request.url, strip_params=strip_params),
                reasons[-1] if len(reasons) == len(urls) else None)


def redirect_hops(response: Response, *, strip_params: bool = True) -> list[Redirect]:
    """The redirects Chromium followed to a rendered page, first to last (none if not rendered).

    Chromium follows them itself, so Scrapy schedules no request per hop;
    scrapy-playwright leaves the chain in `redirect_urls` / `redirect_reasons`.
    """
    if not rendering.is_marked(response.meta):
        return []
    urls = [*(response.meta.get("redirect_urls") or ()), response.url]
    reasons = list(response.meta.get("redirect_reasons") or ())
    chain = [canonicalize(u, strip_params=strip_params) for u in urls]
    hops = (_hop(source, target, reasons[i] if i < len(reasons) else None)
            for i, (source, target) in enumerate(zip(chain, chain[1:], strict=False)))
    return [hop for hop in hops if hop is not None]


def _hop(source: str, target: str, reason: object) -> Redirect | None:
    """The Redirect from `source` to `target` (canonical URLs); None unless they differ and
    both are http(s)."""
    if source == target or not (source.startswith(("http://", "https://"))
                                and target.startswith(("http://", "https://"))):
        return None
    status = reason if isinstance(reason, int) and not isinstance(reason, bool) else None
    return Redirect(url=source, target_url=target, status=status)


class PagesMiddleware:
    """Spider middleware putting a response's Page and Link items before its callback's output."""

    def __init__(self, crawler: Crawler, errback: Callable[..., Any], links: bool,
                 strip_params: bool = True) -> None:
        self.crawler = crawler
        self.errback = errback
        self.links = links
        self.strip_params = strip_params
        # Requests of the spider's output that carry redirect meta (copied from a
        # redirected response): scheduling them follows no redirect.
        self._from_spider: WeakSet[Request] = WeakSet()
        self._storage: StoragePipeline | None = None
        crawler.signals.connect(self._scheduled, signals.request_scheduled)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        spider = kit_spider(crawler, "CRAWLGRAPH_PAGES_ENABLED")
        settings = crawler.settings
        return cls(crawler, spider.on_failure, settings.getbool("CRAWLGRAPH_PAGES_LINKS", True),
                   settings.getbool("CRAWLGRAPH_STRIP_SESSION_PARAMS", True))

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for out in start:
            yield self._with_errback(out)

    def process_spider_input(self, response: Response) -> None:
        recrawl = ConditionalMiddleware.for_crawler(self.crawler)
        carried = recrawl.carried_links(response) if recrawl is not None else None
        if carried is not None:  # a 304: the callback follows the previous crawl's links
            carry_over(response, [PageLink(*link) for link in carried])

    async def process_spider_output(self, response: Response,
                                    result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if response.meta.get(SITEMAP_META):
            async for out in result:
                yield self._with_errback(out)
            return
        stats = self.crawler.stats
        stats.inc_value("crawlgraph/pages")
        page = self._page(response)
        yield page
        if self.links:
            links = extract_links(response, strip_params=self.strip_params)
            stats.inc_value("crawlgraph/links", len(links))
            for link in links:
                yield Link(source_url=page.final_url, target_url=link.url, anchor_text=link.text,
                           nofollow=link.nofollow, count=link.count)
        async for out in result:
            yield self._with_errback(out)

    def _page(self, response: Response) -> Page:
        recrawl = ConditionalMiddleware.for_crawler(self.crawler)
        if recrawl is None or not recrawl.active:
            return response_page(response, strip_params=self.strip_params)
        prev = recrawl.previous(response)
        if response.status == 304 and prev is not None:
            return carried_page(response, prev, strip_params=self.strip_params)
        return compared(response_page(response, strip_params=self.strip_params), prev)

    def _with_errback(self, out: Any) -> Any:
        if isinstance(out, Request):
            if out.errback is None:
                out.errback = self.errback
            if "redirect_urls" in out.meta:
                self._from_spider.add(out)
        return out

    def _scheduled(self, request: Request) -> None:
        if ("redirect_urls" not in request.meta or request in self._from_spider
                or request.meta.get(SITEMAP_META)):
            return  # no hop; or a sitemap file's: it is no page, so its hops are none either
        hop = redirect_hop(request, strip_params=self.strip_params)
        if hop is None:
            return
        self.crawler.stats.inc_value("crawlgraph/redirects")
        if self._storage is None:  # the pipelines are made after the spider middlewares
            self._storage = StoragePipeline.for_crawler(self.crawler)
        if self._storage is not None:
            self._storage.process_item(hop)

