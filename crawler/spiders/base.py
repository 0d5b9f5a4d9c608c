"""The spider kit: a base class giving every crawlgraph spider the whole crawling stack.

A subclass of `CrawlgraphSpider` writes only its callbacks. It gets:

- its job parameters as typed, validated arguments (`self.args`, an instance
  of the class attribute `Args`, a msgspec Struct the job API also serves);
  a bad parameter closes the spider with a reason naming it;
- a `Page` item for every response (errors included, with the final URL
  after redirects) and a `Link` item for every `<a href>` / `<area href>`,
  resolved against the page's base URL and canonicalized (`crawler.urls`);
- scope: requests it yields (from any callback) leave the start hosts (or
  `allowed_domains`), or match `exclude` / miss `include`, and they are
  dropped; `max_depth` and `max_pages` are enforced the same way;
- JavaScript rendering per `render_js` (`crawler.rendering`);
- robots.txt, throttling, user agents, retries, block detection, limits and
  the private-address guard (downloader middlewares, `crawler.middlewares`),
  the shared frontier and the storage pipeline (project settings).

Callbacks are plain Scrapy callbacks (`parse` by default) returning or
yielding items and requests; set `follow_links = True` to also follow every
in-scope link automatically (what the `site` spider does).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, get_args, get_origin

import msgspec
import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider
from scrapy.http import Request, Response, TextResponse
from scrapy.utils.response import get_base_url
from twisted.python.failure import Failure

from crawler import rendering
from crawler.items import Link, Page
from crawler.middlewares.addressguard import AddressRefused
from crawler.middlewares.ledger import CrawlLedger
from crawler.middlewares.limits import cut_off_reason
from crawler.middlewares.robots import RobotsForbidden
from crawler.urls import canonicalize, host_key, resolve

logger = logging.getLogger(__name__)

CALLBACK_META = "crawlgraph_callback"
# Every status reaches the callback (a Page is stored for it), except redirects,
# which the redirect middleware must still follow.
HANDLED_STATUSES = [s for s in range(100, 1000) if s not in (301, 302, 303, 307, 308)]
_AT_FIELD = re.compile(r"^(.*?) - at `\$\.(\w+)([^`]*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")


class SpiderArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The arguments (job parameters) every crawlgraph spider takes.

    scrapyd passes them as strings: numbers and booleans are converted, lists
    are JSON arrays (a single URL or pattern may be given as a plain string).
    """

    job_id: str | None = None
    start_urls: list[str] = []
    allowed_domains: list[str] = []
    include: list[str] = []
    exclude: list[str] = []
    max_depth: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_pages: Annotated[int, msgspec.Meta(ge=1)] | None = None
    follow_nofollow: bool = False
    render_js: Literal["never", "always", "auto"] = "never"
    render_selector: str | None = None
    obey_robots: bool = True

    def __post_init__(self) -> None:
        if self.job_id is not None:
            try:
                uuid.UUID(self.job_id)
            except ValueError:
                raise ValueError(f"job_id: not a UUID: {self.job_id!r}") from None
        for url in self.start_urls:
            if not re.match(r"^https?://[^/?#\s]+", url, re.IGNORECASE):
                raise ValueError(f"start_urls: not an absolute http(s) URL: {url!r}")
        for name in ("include", "exclude"):
            for pattern in getattr(self, name):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{name}: invalid regular expression {pattern!r}: {exc}") from None
        for domain in self.allowed_domains:
            if not domain or "/" in domain or " " in domain:
                raise ValueError(f"allowed_domains: not a host name: {domain!r}")
        if self.render_selector:
            try:
                scrapy.Selector(text="<p></p>").css(self.render_selector)
            except Exception as exc:  # cssselect raises several error types
                raise ValueError(
                    f"render_selector: invalid CSS selector {self.render_selector!r}: {exc}"
                ) from None


class SpiderArgumentError(ValueError):
    """A spider argument (job parameter) is invalid; the message names it."""


def _is_list(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return get_origin(tp) is list or any(get_origin(a) is list for a in get_args(tp))


def parse_args(args_type: type[msgspec.Struct], raw: dict[str, Any]) -> msgspec.Struct:
    """Validate spider arguments (strings from scrapyd, or typed values) into `args_type`.

    Raises SpiderArgumentError with a message naming the bad parameter.
    """
    fields = {f.name: f for f in msgspec.structs.fields(args_type)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("_"):  # scrapyd's own (_job, _version)
            continue
        if name not in fields:
            raise SpiderArgumentError(
                f"{name}: unknown argument; this spider takes {', '.join(sorted(fields))}")
        if isinstance(value, str) and _is_list(fields[name].type):
            if value.lstrip().startswith("["):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise SpiderArgumentError(f"{name}: not a JSON list: {exc}") from None
            else:
                value = [value] if value else []
        elif value == "" and fields[name].default is None:
            value = None
        values[name] = value
    try:
        return msgspec.convert(values, args_type, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if m := _AT_FIELD.match(message):
            message = f"{m.group(2)}: {m.group(1)}" + (f" (at {m.group(3)})" if m.group(3)
                                                      else "")
        elif m := _UNKNOWN.search(message):
            message = f"{m.group(1)}: unknown argument"
        raise SpiderArgumentError(message) from None


@dataclass(frozen=True, slots=True)
class ExtractedLink:
    url: str
    text: str
    nofollow: bool
    count: int


class CrawlgraphSpider(scrapy.Spider):
    """Base class of crawlgraph spiders (see the module docstring)."""

    Args: ClassVar[type[SpiderArgs]] = SpiderArgs
    #: Follow every in-scope link of every HTML page (the site spider); False
    #: follows only the requests the callbacks yield.
    follow_links: ClassVar[bool] = False
    #: Store a Link item for every hyperlink of every page.
    store_links: ClassVar[bool] = True
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
        self.job_id = self.args.job_id
        self.obey_robots = self.args.obey_robots
        self._include = [re.compile(p) for p in self.args.include]
        self._exclude = [re.compile(p) for p in self.args.exclude]
        self._scope_hosts = {host_key(u) for u in self.args.start_urls}
        self._domains = [d.lower().rstrip(".") for d in self.args.allowed_domains]
        self._pages = 0
        self._closing = False

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider.args_error is None:
            rendering.configure(crawler.settings, spider.args.render_js)
        crawler.signals.connect(spider._adopt, signals.request_reached_downloader)
        return spider

    def _adopt(self, request: Request, spider: scrapy.Spider) -> None:
        """Route requests made outside the kit (the job API's frontier seeds) through it.

        A seeded request has no callback (Scrapy calls `_parse`, which the kit
        routes) and no errback: give it the kit's, so a failure still yields a
        Page, and mark it for rendering under `render_js=always`.
        """
        if request.callback is None and request.errback is None:
            request.errback = self._on_error
            if self.args.render_js == "always":
                rendering.mark(request.meta)

    # -- start ---------------------------------------------------------------------
    async def start(self) -> Any:
        if self.args_error is not None:
            logger.error("bad spider arguments: %s", self.args_error)
            self.crawler.stats.set_value("crawlgraph/args_error", self.args_error)
            raise CloseSpider(f"bad_arguments: {self.args_error}")
        # With the shared frontier the job API has seeded these already; yielding
        # them again is harmless (the seen-set drops them) and lets a plain
        # `scrapy crawl` start on its own.
        for url in self.args.start_urls:
            yield self.make_request(canonicalize(url), callback=self.parse, depth=0)

    def make_request(self, url: str, callback: Any = None, *, depth: int | None = None,
                     **kwargs: Any) -> Request:
        """A request routed through the kit (Page/Link items, scope, rendering)."""
        meta = dict(kwargs.pop("meta", None) or {})
        meta[CALLBACK_META] = (callback or self.parse).__name__
        if depth is not None:
            meta.setdefault("depth", depth)
        if self.args.render_js == "always":
            rendering.mark(meta)
        return Request(url, callback=self._on_response, errback=self._on_error, meta=meta,
                       **kwargs)

    def robots_sitemaps(self, url: str) -> list[str]:
        """`Sitemap:` URLs in the robots.txt of `url`'s host (once it has been read)."""
        from crawler.middlewares.robots import RobotsMiddleware

        engine = self.crawler.engine
        for mw in engine.downloader.middleware.middlewares if engine else ():
            if isinstance(mw, RobotsMiddleware):
                return mw.sitemaps(url)
        return []

    # -- scope ---------------------------------------------------------------------
    def in_scope(self, url: str) -> bool:
        """Inside the crawl's hosts and include/exclude patterns."""
        if not url.startswith(("http://", "https://")):
            return False
        key = host_key(url)
        if self._domains:
            host = key.rsplit(":", 1)[0]
            if not any(host == d or host.endswith("." + d) or key == d for d in self._domains):
                return False
        elif key not in self._scope_hosts:
            return False
        if self._include and not any(p.search(url) for p in self._include):
            return False
        return not any(p.search(url) for p in self._exclude)

    def _admit(self, request: Request, response: Response) -> Request | None:
        """Route a callback's request through the kit, or drop it (scope, depth, pages)."""
        url = canonicalize(request.url)
        depth = response.meta.get("depth", 0) + 1
        if not self.in_scope(url):
            self.crawler.stats.inc_value("crawlgraph/offsite")
            return None
        if self.args.max_depth is not None and depth > self.args.max_depth:
            self.crawler.stats.inc_value("crawlgraph/too_deep")
            return None
        if self._budget_spent():
            return None
        if request.meta.get(CALLBACK_META) and request.callback == self._on_response:
            return request.replace(url=url) if url != request.url else request
        meta = dict(request.meta)
        callback = request.callback or self.parse
        meta[CALLBACK_META] = callback.__name__
        if self.args.render_js == "always":
            rendering.mark(meta)
        return request.replace(url=url, callback=self._on_response, errback=self._on_error,
                               meta=meta)

    def _budget_spent(self) -> bool:
        return self.args.max_pages is not None and self._pages >= self.args.max_pages

    # -- responses -----------------------------------------------------------------
    def _on_response(self, response: Response) -> Iterator[Any]:
        if self._budget_spent():
            return
        if rendering.needs_render(response, self.args.render_js, self.args.render_selector):
            self.crawler.stats.inc_value("crawlgraph/render_retry")
            self.crawler.engine.crawl(rendering.render_request(response.request))
            return
        self._pages += 1
        yield self.page_item(response)
        links = self.extract_links(response)
        if self.store_links:
            source = canonicalize(response.url)
            for link in links:
                yield Link(source_url=source, target_url=link.url, anchor_text=link.text,
                           nofollow=link.nofollow, count=link.count)
        if self.follow_links:
            for link in links:
                if link.nofollow and not self.args.follow_nofollow:
                    continue
                request = self._admit(Request(link.url, callback=self.parse), response)
                if request is not None:
                    yield request
        callback = getattr(self, response.meta.get(CALLBACK_META) or "parse")
        for out in _iterate(callback(response)):
            if isinstance(out, Request):
                admitted = self._admit(out, response)
                if admitted is not None:
                    yield admitted
            else:
                yield out
        if self._budget_spent() and not self._closing:
            self._closing = True
            raise CloseSpider("max_pages")

    def _parse(self, response: Response, **kwargs: Any) -> Any:
        # Scrapy's entry point for a request without a callback (a frontier seed).
        return self._on_response(response)

    def parse(self, response: Response, **kwargs: Any) -> Iterable[Any]:
        """The default callback: nothing beyond the kit's Page and Link items."""
        return ()

    def _on_error(self, failure: Failure) -> Iterator[Any]:
        request: Request = failure.request  # type: ignore[attr-defined]
        exc = failure.value
        if isinstance(exc, RobotsForbidden | AddressRefused):
            return  # a decision, not a page (robots ledger / addressguard stats)
        response = getattr(exc, "response", None)
        if isinstance(response, Response):  # an HTTP error status
            yield from self._on_response(response)
            return
        cut = cut_off_reason(exc)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if cut is not None:
            error = f"cut off ({cut} limit): {error}"
            self.crawler.stats.inc_value(f"crawlgraph/cut_off/{cut}")
            CrawlLedger.for_crawler(self.crawler).event("cut_off", host_key(request.url),
                                                        canonicalize(request.url), 0, error)
        self.crawler.stats.inc_value(f"crawlgraph/error/{type(exc).__name__}")
        url = canonicalize((request.meta.get("redirect_urls") or [request.url])[0])
        yield Page(url=url, final_url=canonicalize(request.url), status=0,
                   fetched_at=datetime.now(UTC), depth=request.meta.get("depth", 0),
                   rendered=rendering.is_marked(request.meta), error=error)

    # -- items -----------------------------------------------------------------------
    def page_item(self, response: Response) -> Page:
        """The Page item of a response."""
        first = (response.meta.get("redirect_urls") or [response.url])[0]
        ctype = response.headers.get(b"Content-Type")
        title = None
        if _is_html(response):
            title = response.css("title::text").get()
            title = " ".join(title.split()) if title else None
        latency = response.meta.get("download_latency")
        return Page(
            url=canonicalize(first), final_url=canonicalize(response.url),
            status=response.status, fetched_at=datetime.now(UTC),
            content_type=ctype.decode("latin-1") if ctype else None, title=title,
            depth=response.meta.get("depth", 0), size=len(response.body),
            content_hash=hashlib.sha256(response.body).hexdigest(),
            elapsed_ms=int(latency * 1000) if latency is not None else None,
            rendered=rendering.is_marked(response.meta))

    def extract_links(self, response: Response) -> list[ExtractedLink]:
        """Every `<a href>` / `<area href>` of an HTML page, canonical, one per target."""
        if not _is_html(response):
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
        return [ExtractedLink(url, t[:1000], nf, n) for url, (t, nf, n) in found.items()]


def _is_html(response: Response) -> bool:
    if not isinstance(response, TextResponse):
        return False
    ctype = (response.headers.get(b"Content-Type") or b"").lower()
    return b"html" in ctype or (not ctype and b"<html" in response.body[:1024].lower())


def _iterate(result: Any) -> Iterable[Any]:
    if result is None:
        return ()
    if isinstance(result, Request | dict) or not isinstance(result, Iterable):
        return (result,)
    return result
