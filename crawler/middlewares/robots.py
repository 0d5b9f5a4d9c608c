"""robots.txt (RFC 9309) with Protego: fetched once per host, cached, obeyed correctly.

For each `scheme://host:port` the middleware fetches `/robots.txt` once
(following up to 5 redirects) and caches the verdict for
`CRAWLGRAPH_ROBOTS_TTL` seconds:

- 2xx: the rules are parsed with Protego and matched for our product token
  `CRAWLGRAPH_ROBOTS_TOKEN` (not the rotating User-Agent); `Crawl-delay`
  becomes the host's minimum delay (the throttle hears it through the
  `robots_parsed` signal, `crawler.middlewares.signals`) and `Sitemap:` lines
  are kept for spiders (`RobotsMiddleware.for_crawler(crawler).sitemaps(url)`);
- 4xx: robots.txt is unavailable, everything is allowed;
- 5xx: everything is disallowed for now, and robots.txt is fetched again
  after `CRAWLGRAPH_ROBOTS_ERROR_TTL` seconds;
- unreachable (the name does not resolve, the connection is refused or reset,
  TLS fails, no answer in time): the host's requests fail with that cause
  (`crawler.failures.RobotsUnreachable`), so each is a page error that says
  why, until robots.txt is asked again after `CRAWLGRAPH_ROBOTS_ERROR_TTL`.

Each skipped URL raises `RobotsForbidden` (stat `robotstxt/forbidden`) and is
recorded in the job's robots decision ledger. It replaces Scrapy's
RobotsTxtMiddleware, which parses the body whatever the status and treats a
download error as allow-all. On unless `CRAWLGRAPH_ROBOTS_OBEY` (default:
Scrapy's `ROBOTSTXT_OBEY`) is false; a
spider's `obey_robots` argument or a request's `dont_obey_robotstxt` meta
turns it off for that spider or request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

from protego import Protego
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK

from crawler.failures import Failure, RobotsUnreachable, describe
from crawler.middlewares.ledger import CrawlLedger
from crawler.middlewares.signals import robots_parsed

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_ATTR = "_crawlgraph_robots"


class RobotsForbidden(IgnoreRequest):
    """A request skipped because robots.txt disallows it (or is unavailable)."""


@dataclass
class RobotsRules:
    """The verdict for one host: allow all, disallow all, or Protego's rules."""

    status: int  # the robots.txt response status; 0 when unreachable
    parser: Protego | None = None
    disallow_all: bool = False
    expires: float = 0.0
    sitemaps: list[str] = field(default_factory=list)
    # Why robots.txt could not be fetched at all (DNS, refused, TLS, timeout ...).
    unreachable: Failure | None = None

    def allowed(self, url: str, token: str) -> bool:
        if self.disallow_all:
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(url, token)

    def crawl_delay(self, token: str) -> float | None:
        return self.parser.crawl_delay(token) if self.parser is not None else None


class RobotsMiddleware:
    """Downloader middleware obeying robots.txt, per RFC 9309."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.crawler = crawler
        self.token = s.get("CRAWLGRAPH_ROBOTS_TOKEN", "crawlgraph")
        self.ttl = s.getfloat("CRAWLGRAPH_ROBOTS_TTL", 86400.0)
        self.error_ttl = s.getfloat("CRAWLGRAPH_ROBOTS_ERROR_TTL", 60.0)
        self.ledger = CrawlLedger.for_crawler(crawler)
        self._rules: dict[str, RobotsRules] = {}
        self._pending: dict[str, asyncio.Future[RobotsRules]] = {}
        self._obey = True
        crawler.signals.connect(self._spider_opened, signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("CRAWLGRAPH_ROBOTS_OBEY",
                                settings.getbool("ROBOTSTXT_OBEY", True)):
            raise NotConfigured("robots.txt is not obeyed")
        middleware = cls(crawler)
        setattr(crawler, _ATTR, middleware)
        return middleware

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> RobotsMiddleware | None:
        """The crawler's robots.txt middleware, or None if robots.txt is not obeyed."""
        return getattr(crawler, _ATTR, None)

    def _spider_opened(self, spider: Any) -> None:
        self._obey = bool(getattr(spider, "obey_robots", True))

    def sitemaps(self, url: str) -> list[str]:
        """`Sitemap:` URLs of the host of `url` (empty until its robots.txt was read)."""
        rules = self._rules.get(_origin(url))
        return list(rules.sitemaps) if rules else []

    async def process_request(self, request: Request) -> None:
        if not self._obey or request.meta.get("dont_obey_robotstxt"):
            return
        if not request.url.startswith(("http://", "https://")):
            return
        rules = await self.rules_for(request.url)
        if rules.allowed(request.url, self.token):
            return
        if rules.unreachable is not None:
            self.crawler.stats.inc_value("robotstxt/unreachable")
            raise RobotsUnreachable(rules.unreachable)
        self.crawler.stats.inc_value("robotstxt/forbidden")
        decision = "disallowed" if rules.parser is not None else "unavailable"
        host = urlsplit(request.url).netloc
        self.ledger.robots_decision(request.url, host, decision, rules.status)
        logger.debug("forbidden by robots.txt (%s): %s", decision, request.url)
        raise RobotsForbidden(f"forbidden by robots.txt ({decision}, status {rules.status})")

    async def rules_for(self, url: str) -> RobotsRules:
        origin = _origin(url)
        rules = self._rules.get(origin)
        if rules is not None and rules.expires > time.monotonic():
            return rules
        pending = self._pending.get(origin)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[RobotsRules] = asyncio.get_running_loop().create_future()
        self._pending[origin] = future
        try:
            rules = await self._fetch(origin)
            self._rules[origin] = rules
            future.set_result(rules)
        except BaseException as exc:  # never leave waiters hanging
            future.set_exception(exc)
            raise
        finally:
            del self._pending[origin]
        return rules

    async def _fetch(self, origin: str) -> RobotsRules:
        request = Request(
            f"{origin}/robots.txt", priority=1000, callback=NO_CALLBACK,
            meta={"dont_obey_robotstxt": True, "dont_retry": True,
                  "redirect_ttl": MAX_REDIRECTS,
                  "crawlgraph_robots": True})
        self.crawler.stats.inc_value("robotstxt/request_count")
        now = time.monotonic()
        try:
            response: Response = await self.crawler.engine.download_async(request)
        except Exception as exc:
            self.crawler.stats.inc_value(f"robotstxt/exception_count/{type(exc).__name__}")
            failure = describe(exc, request.url)
            logger.warning("robots.txt of %s unreachable (%s): its requests fail for %.0fs",
                           origin, failure.reason, self.error_ttl)
            self.ledger.event("robots_unavailable", urlsplit(origin).netloc, request.url, 0,
                              failure.text())
            return RobotsRules(status=0, disallow_all=True, expires=now + self.error_ttl,
                               unreachable=failure)
        status = response.status
        self.crawler.stats.inc_value(f"robotstxt/response_status_count/{status}")
        if 300 <= status < 400:  # more redirects than allowed: unreachable
            return RobotsRules(status=status, disallow_all=True, expires=now + self.error_ttl)
        if 400 <= status < 500:
            return RobotsRules(status=status, expires=now + self.ttl)
        if status >= 500 or status < 200:
            logger.warning("robots.txt of %s answered %s: disallowing for %.0fs",
                           origin, status, self.error_ttl)
            self.ledger.event("robots_unavailable", urlsplit(origin).netloc, request.url,
                              status, "server error")
            return RobotsRules(status=status, disallow_all=True, expires=now + self.error_ttl)
        body = response.body[:512 * 1024]  # RFC 9309: parse at least 500 KiB
        parser = Protego.parse(body.decode("utf-8", errors="replace"))
        rules = RobotsRules(status=status, parser=parser, expires=now + self.ttl,
                            sitemaps=list(parser.sitemaps))
        delay = rules.crawl_delay(self.token)
        await self.crawler.signals.send_catch_log_async(
            signal=robots_parsed, url=origin, rules=rules,
            crawl_delay=float(delay) if delay else None)
        return rules


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()

