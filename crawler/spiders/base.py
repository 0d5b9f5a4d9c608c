"""The spider kit: `CrawlgraphSpider`, a plain Scrapy spider with validated job parameters.

A subclass writes only its callbacks (`parse` by default), returning or
yielding items and requests. It gets:

- its job parameters as typed, validated arguments (`self.args`, an instance
  of the class attribute `Args`, `crawler.spiders.args.SpiderArgs` or a
  subclass); a bad parameter closes the spider with a reason naming it;
- from the kit's spider middlewares (`crawler.spidermiddlewares`, on in the
  project settings): canonical request URLs, the `scope` (`site` by
  default: the start hosts with and without `www.`, over http and https,
  and where the start URLs redirect; or `host`, `domain`, `prefix`; or
  `allowed_domains`; `include` / `exclude` on top), `max_depth`, the
  `max_pages` budget, JavaScript rendering per `render_js`, a `Page` item
  for every response, a `Link` item for every hyperlink and a `Redirect`
  item for every redirect hop;
- a `Page` for every failed download too, through its errback `on_failure`
  (which the pages middleware gives every request that has none);
- robots.txt, throttling, user agents, retries, block detection, limits and
  the private-address guard (downloader middlewares, `crawler.middlewares`),
  the shared frontier and the storage pipeline (project settings).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import msgspec
import scrapy
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider
from scrapy.http import Request, Response
from twisted.python.failure import Failure

from crawler import rendering
from crawler.failures import describe
from crawler.items import Page
from crawler.middlewares.addressguard import AddressRefused
from crawler.middlewares.ledger import CrawlLedger
from crawler.middlewares.limits import cut_off_reason
from crawler.middlewares.robots import RobotsForbidden, RobotsMiddleware
from crawler.sitemaps import discovery
from crawler.spiders.args import SpiderArgs, SpiderArgumentError, parse_args
from crawler.urls import canonicalize, host_key

logger = logging.getLogger(__name__)

# Every status reaches the callback (a Page is stored for it), except redirects,
# which the redirect middleware must still follow.
HANDLED_STATUSES = [s for s in range(100, 1000) if s not in (301, 302, 303, 307, 308)]


class CrawlgraphSpider(scrapy.Spider):
    """Base class of crawlgraph spiders (see the module docstring)."""

    Args: ClassVar[type[SpiderArgs]] = SpiderArgs
    #: Every status reaches the callbacks (HttpErrorMiddleware) except redirects,
    #: which RedirectMiddleware still follows; an attribute, not request meta, so
    #: that requests stay small in the frontier.
    handle_httpstatus_list: ClassVar[list[int]] = HANDLED_STATUSES

    #: Start URLs used when the `start_urls` argument is not given.
    start_urls: ClassVar[list[str]] = []

    args: SpiderArgs
    args_error: str | None

    def __init__(self, *a: Any, **kwargs: Any) -> None:
        # Arguments are not set as attributes (Scrapy's default): they are
        # validated into self.args, and e.g. an `allowed_domains` attribute
        # would switch on Scrapy's offsite filtering, which ignores ports.
        super().__init__(*a)
        self.args_error = None
        try:
            self.args = parse_args(self.Args, kwargs)
        except SpiderArgumentError as exc:
            self.args_error = str(exc)
            self.args = self.Args()
        if not self.args.start_urls and type(self).start_urls:
            # A spider class may name its own start URLs; the argument wins.
            self.args = msgspec.structs.replace(self.args,
                                                start_urls=list(type(self).start_urls))
        # Read by the downloader middlewares, the ledger and the storage pipeline.
        self.job_id = self.args.job_id
        self.obey_robots = self.args.obey_robots

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider.args_error is None and crawler.settings.getbool("CRAWLGRAPH_RENDER_ENABLED",
                                                                  True):
            rendering.configure(crawler.settings, spider.args.render_js)
        return spider

    async def start(self) -> AsyncIterator[Request]:
        if self.args_error is not None:
            logger.error("bad spider arguments: %s", self.args_error)
            self.crawler.stats.set_value("crawlgraph/args_error", self.args_error)
            raise CloseSpider(f"bad_arguments: {self.args_error}")
        # With the shared frontier the job API has seeded these already; yielding
        # them again is harmless (the seen-set drops them) and lets a plain
        # `scrapy crawl` start on its own.
        for url in self.args.start_urls:
            yield Request(url, callback=self.parse, meta={"depth": 0})

    def parse(self, response: Response, **kwargs: Any) -> Iterable[Any]:
        """The default callback: nothing beyond the kit's Page and Link items."""
        return ()

    def on_failure(self, failure: Failure) -> Iterable[Any]:
        """The kit's errback: a failed download is stored as a Page (status 0).

        A status the spider does not handle (a redirect that was not followed)
        is a page like any other: its response goes to the request's callback.
        Robots.txt and the private-address guard refusing a request are
        decisions, not pages (their ledger and stats record them). A spider's
        own errback may end with `return self.on_failure(failure)`.
        """
        request: Request = failure.request  # type: ignore[attr-defined]
        exc = failure.value
        if isinstance(exc, RobotsForbidden | AddressRefused):
            return ()
        response = getattr(exc, "response", None)
        if isinstance(response, Response):  # HttpErrorMiddleware's HttpError
            callback = request.callback or self.parse
            return callback(response, **request.cb_kwargs)
        return (self._failure_page(request, exc),)

    def _failure_page(self, request: Request, exc: BaseException) -> Page:
        stats = self.crawler.stats
        cut = cut_off_reason(exc)
        failure = describe(exc, request.url)
        error = failure.text()
        stats.inc_value(f"crawlgraph/error_cause/{failure.cause}")
        if cut is not None:
            error = f"cut off ({cut} limit): {failure.detail}"[:2000]
            stats.inc_value(f"crawlgraph/cut_off/{cut}")
            CrawlLedger.for_crawler(self.crawler).event("cut_off", host_key(request.url),
                                                        canonicalize(request.url), 0, error)
        stats.inc_value(f"crawlgraph/error/{type(exc).__name__}")
        strip = self.crawler.settings.getbool("CRAWLGRAPH_STRIP_SESSION_PARAMS", True)
        url = canonicalize((request.meta.get("redirect_urls") or [request.url])[0],
                           strip_params=strip)
        return Page(url=url, final_url=canonicalize(request.url, strip_params=strip), status=0,
                    fetched_at=datetime.now(UTC), depth=request.meta.get("depth", 0),
                    rendered=rendering.is_marked(request.meta), error=error,
                    discovered=discovery(request.meta))

    def robots_sitemaps(self, url: str) -> list[str]:
        """`Sitemap:` URLs in the robots.txt of `url`'s host (once it has been read)."""
        robots = RobotsMiddleware.for_crawler(self.crawler)
        return robots.sitemaps(url) if robots is not None else []
