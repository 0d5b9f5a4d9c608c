"""robots.txt (RFC 9309) with Protego: fetched once per host, cached, obeyed correctly.

For each `scheme://host:port` the middleware fetches `/robots.txt` (following
up to 5 redirects) and caches the verdict for `CRAWLGRAPH_ROBOTS_TTL` seconds:

- 2xx: the rules are parsed with Protego and matched for our product token
  `CRAWLGRAPH_ROBOTS_TOKEN` (not the rotating User-Agent); `Crawl-delay`
  becomes the host's minimum delay (the throttle hears it through the
  `robots_parsed` signal, `crawler.middlewares.signals`) and `Sitemap:` lines
  are kept for spiders (`RobotsMiddleware.for_crawler(crawler).sitemaps(url)`);
- 4xx: robots.txt is unavailable, everything is allowed;
- more than 5 redirects: everything is disallowed (`RobotsForbidden`) until
  robots.txt is asked again after `CRAWLGRAPH_ROBOTS_ERROR_TTL` seconds;
- 5xx, or no answer in time, or the connection reset before an answer: an
  outage. Nothing of the host is fetched (RFC 9309, 2.3.1.3-2.3.1.4), and
  nothing is lost: each request of the host is deferred
  (`crawler.frontier.defer.Defer`) back into the job's shared frontier, where
  it holds no downloader slot and waits for any worker of the job. The job's
  workers share the outage in Redis (`crawler.middlewares.robotswait`): one
  of them asks robots.txt again at a time, after an exponential, jittered
  backoff (`CRAWLGRAPH_ROBOTS_BACKOFF_BASE` [1.0] doubling up to
  `CRAWLGRAPH_ROBOTS_BACKOFF_MAX` [60] seconds), and once it answers the
  waiting requests go on. After `CRAWLGRAPH_ROBOTS_MAX_WAIT` [300] seconds
  of outage the job gives up on the host: each of its requests is a page
  error with the cause ``robots_unavailable`` (`crawler.failures`), and a
  ``robots_gave_up`` crawl event is recorded once (the outage's start, like
  an unreachable robots.txt, is a ``robots_unavailable`` event). Without the Redis frontier (a plain
  `scrapy crawl`) nothing can wait, so it gives up at once, as it does with
  `CRAWLGRAPH_ROBOTS_MAX_WAIT = 0`;
- unreachable for good (the name does not resolve, the connection is
  refused, TLS fails, no route): the host's requests fail at once with that
  cause (`crawler.failures.RobotsUnreachable`), each a page error that says
  why, until robots.txt is asked again after `CRAWLGRAPH_ROBOTS_ERROR_TTL`.
  Waiting minutes for these is not worth it: the page itself would fail the
  same way, and a dead start host must fail its job promptly, naming the
  host and the cause. A timeout or a reset is often a server restarting or
  overloaded, as a 5xx is: those wait.

Each URL robots.txt disallows raises `RobotsForbidden` (stat
`robotstxt/forbidden`) and is recorded in the job's robots decision ledger;
each deferred one counts `robotstxt/deferred`, each given up
`robotstxt/gave_up`. It replaces Scrapy's RobotsTxtMiddleware, which parses
the body whatever the status and treats a download error as allow-all. On
unless `CRAWLGRAPH_ROBOTS_OBEY` (default: Scrapy's `ROBOTSTXT_OBEY`) is
false; a spider's `obey_robots` argument or a request's `dont_obey_robotstxt`
meta turns it off for that spider or request.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
from crawler.frontier.defer import Defer, can_defer, job_frontier
from crawler.middlewares.ledger import CrawlLedger
from crawler.middlewares.robotswait import Outage, RobotsOutages
from crawler.middlewares.signals import robots_parsed

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_ATTR = "_crawlgraph_robots"
# Failures of the robots.txt fetch that are worth waiting for, like a 5xx; the
# others (dns, refused, tls, unreachable ...) fail the host's requests at once.
WAIT_CAUSES = {"timeout": "did not answer in time", "reset": "reset the connection"}


class RobotsForbidden(IgnoreRequest):
    """A request skipped because robots.txt disallows it (or redirects more than 5 times)."""


@dataclass(frozen=True, slots=True)
class _Down:
    """robots.txt failed in a way worth waiting for: its status (0: no answer) and how."""

    status: int
    detail: str


@dataclass
class RobotsRules:
    """The verdict for one host: allow all, disallow all, or Protego's rules."""

    status: int  # the robots.txt response status; 0 when unreachable
    parser: Protego | None = None
    disallow_all: bool = False
    expires: float = 0.0
    sitemaps: list[str] = field(default_factory=list)
    # Why the host's requests fail: robots.txt unreachable for good (DNS, refused,
    # TLS ...), or down for longer than the wait.
    unreachable: Failure | None = None
    # robots.txt is down: the host's requests wait (are deferred) until `expires`.
    waiting: str | None = None

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
        self.max_wait = s.getfloat("CRAWLGRAPH_ROBOTS_MAX_WAIT", 300.0)
        self.backoff_base = s.getfloat("CRAWLGRAPH_ROBOTS_BACKOFF_BASE", 1.0)
        self.backoff_max = s.getfloat("CRAWLGRAPH_ROBOTS_BACKOFF_MAX", 60.0)
        # One worker asks robots.txt at a time; a claim outlives a slow answer.
        self.claim_seconds = s.getfloat("DOWNLOAD_TIMEOUT", 180.0) + 30.0
        self._outages: RobotsOutages | None = None
        self._rng = random.Random()
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
        if rules.waiting is not None:
            # Back to the frontier; a little jitter so that the host's requests do
            # not all come back at the moment robots.txt is asked again.
            delay = max(rules.expires - time.monotonic(), 0.0)
            self.crawler.stats.inc_value("robotstxt/deferred")
            raise Defer(delay + self._rng.random() * min(1.0, 0.1 * delay + 0.05),
                        rules.waiting)
        if rules.allowed(request.url, self.token):
            return
        if rules.unreachable is not None:
            cause = rules.unreachable.cause
            self.crawler.stats.inc_value(
                "robotstxt/gave_up" if cause == "robots_unavailable" else "robotstxt/unreachable")
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
            rules = await self._resolve(origin)
            self._rules[origin] = rules
            future.set_result(rules)
        except BaseException as exc:  # never leave waiters hanging
            future.set_exception(exc)
            raise
        finally:
            del self._pending[origin]
        return rules

    def _shared_outages(self) -> RobotsOutages | None:
        """The job's shared outage state, while requests can wait (else None)."""
        if self.max_wait <= 0 or not can_defer(self.crawler):
            return None
        frontier = job_frontier(self.crawler)
        if self._outages is None or self._outages.frontier is not frontier:
            self._outages = RobotsOutages(
                frontier, max_wait=self.max_wait, base=self.backoff_base,
                cap=self.backoff_max, claim_seconds=self.claim_seconds, rng=self._rng)
        return self._outages

    async def _resolve(self, origin: str) -> RobotsRules:
        """The verdict for `origin`: its rules, or wait, or give up; see the module docstring."""
        outages = self._shared_outages()
        token = ""
        if outages is not None:
            outage = await outages.check(origin)
            if outage is not None and outage.verdict != "ask":
                return self._outage_rules(origin, outage)
            token = outage.token if outage is not None else ""
        verdict = await self._fetch(origin)
        if isinstance(verdict, RobotsRules):
            if outages is not None:
                await outages.answered(origin)
            return verdict
        host = urlsplit(origin).netloc
        if outages is None:  # nothing can wait here: give up at once
            logger.warning("robots.txt of %s %s; its requests are not fetched (they can wait "
                           "only in a job's frontier, and CRAWLGRAPH_ROBOTS_MAX_WAIT > 0)",
                           origin, verdict.detail)
            self.ledger.event("robots_gave_up", host, f"{origin}/robots.txt", verdict.status,
                              f"{verdict.detail}; not waited for")
            return self._outage_rules(origin, Outage("gave_up", 0.0, 1, verdict.status,
                                                     verdict.detail, 0.0))
        outage = await outages.failed(origin, token, verdict.status, verdict.detail)
        if outage.news and outage.verdict == "gave_up":
            logger.warning("robots.txt of %s %s for %.0fs: its requests are not fetched",
                           origin, outage.detail, outage.waited)
            self.ledger.event("robots_gave_up", host, f"{origin}/robots.txt", outage.status,
                              f"{outage.detail} for {outage.waited:.0f}s, past "
                              f"CRAWLGRAPH_ROBOTS_MAX_WAIT; its URLs are not fetched")
        elif outage.news:
            logger.warning("robots.txt of %s %s: the host's requests wait, up to %.0fs",
                           origin, outage.detail, self.max_wait)
            self.ledger.event("robots_unavailable", host, f"{origin}/robots.txt",
                              outage.status, f"{outage.detail}; its URLs wait up to "
                              f"{self.max_wait:.0f}s")
        return self._outage_rules(origin, outage)

    def _outage_rules(self, origin: str, outage: Outage) -> RobotsRules:
        now = time.monotonic()
        if outage.verdict == "gave_up":
            failure = Failure(cause="robots_unavailable", host=urlsplit(origin).hostname or origin,
                              detail=f"unavailable for {outage.waited:.0f}s, it last "
                                     f"{outage.detail}")
            return RobotsRules(status=outage.status, disallow_all=True, expires=now + self.ttl,
                               unreachable=failure)
        return RobotsRules(status=outage.status, disallow_all=True, expires=now + outage.delay,
                           waiting=f"robots.txt of {origin} {outage.detail}, "
                                   f"{outage.attempt} times in {outage.waited:.0f}s")

    async def _fetch(self, origin: str) -> RobotsRules | _Down:
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
            if failure.cause in WAIT_CAUSES:
                return _Down(status=0, detail=WAIT_CAUSES[failure.cause])
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
            return _Down(status=status, detail=f"answered {status}")
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

