"""The crawl's scope: requests leaving it are dropped (links to them are still stored).

A job's `scope` names what its start URLs stand for:

- `site` (the default): each start URL's host with and without `www.`, on
  port 80 and 443 and on the start URL's own port (`http://example.org/`
  takes `https://www.example.org/`), as Hyphe's web entities treat a site by
  default; not its other subdomains. An IP address has no `www.` variant, nor
  does a public suffix (`co.uk`); `www.co.uk` is not stripped to `co.uk`;
- `host`: exactly the start URLs' hosts and ports;
- `domain`: the start URLs' registered domains (Public Suffix List,
  `core.domains.registered_domain`, as the graphs' domain level) with every
  subdomain, on any port: `shop.example.co.uk` takes `example.co.uk` and
  `www.example.co.uk`, never another `*.co.uk`; `user.github.io` is a domain
  of its own;
- `prefix`: each start URL is a prefix, and a URL is in scope when it starts
  with one, compared on canonical forms (`crawler.urls.canonicalize`), the
  origin widened as under `site`: `https://example.org/blog/` takes
  `http://www.example.org/blog/2024/a` but not `https://example.org/about`.
  The comparison is on characters, as "starts with" says: `.../blog` also
  takes `.../blogroll`; end a prefix with `/` to mean a directory.

Hosts and ports are compared as `crawler.urls.host_key` makes them: the
scheme counts only through its default port, so `http://example.org:443/` is
on the origin of `https://example.org/`. Only http(s) URLs are in any scope.

**Redirects.** Under `site`, `domain` and `prefix` the final URL of each start
URL's redirect chain counts as one more start URL (under `host` it does not:
that is today's behaviour, kept). `http://example.org/` answering 301 to
`https://www.example.org/` changes nothing under `site`; `http://old.example/`
moving to `https://new.example/home` brings `new.example`'s site in. A start
URL that lands on a consent or login page elsewhere brings that host in too:
the rule cannot tell a move from a detour. The start URL is recognised by the
response: depth 0, `redirect_urls` set by Scrapy's redirect middlewares, its
first URL one of the `start_urls`.

**Several workers.** A job's crawler processes share one frontier, so the
worker that learns a host is rarely the only one fetching its pages: the
others must know it before they judge those pages' links. A worker that
learns a URL adds it to a Redis set of the job (`crawlgraph:<job>:scope`,
kept 30 days after a worker last opened or learned) before it lets out any
request of that response. A worker that finds a request outside its own
scope, under the scope's own rule, asks Redis once per response whether the
set has grown, and adopts what it has not seen. So every decision that
follows a learning (the learner's requests reach the other workers only
through the frontier, after the set was written) sees it. Learning without
shared state, from the requests a worker is handed, is not enough: a worker
judging the links of an in-scope page on another host has never been handed
a page of the learned host, and would drop its links. What no rule can see
is a host no worker has learned yet: a link to it on another start page
judged before the redirect was fetched is dropped (start URLs are fetched
first, breadth first, which keeps this window short). Without a job id or
`CRAWLGRAPH_REDIS_URL` (a local crawl, one process) learning is local.

**On top of the scope.** `allowed_domains`, when given, is the host part of
the scope instead of the start URLs (`example.org` takes its subdomains and
any port, `host:port` exactly that): under `site`, `host` and `domain` it
replaces them and nothing is learned; under `prefix` a URL must match a prefix
and be on an allowed host (with no start URLs, allowed_domains alone decide).
Then a URL must match one of the `include` patterns if there are any, and none
of the `exclude` patterns. Start requests define the scope and pass.

Stats: `crawlgraph/offsite` (requests dropped) and, per decision,
`crawlgraph/offsite/<why>` (`site`, `host`, `domain` or `prefix`: outside the
scope; `allowed_domains`, `include`, `exclude`, `scheme`: not http(s));
`crawlgraph/scope/learned` (start URL redirect targets this worker added to
the scope) and `crawlgraph/scope/adopted` (ones other workers added).

On in `crawler.settings`; off with `CRAWLGRAPH_SCOPE_ENABLED = False`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from functools import lru_cache
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response

from core.domains import is_public_suffix, registered_domain
from crawler.spidermiddlewares import kit_spider
from crawler.spiders.args import CrawlParams, ScopeKind
from crawler.urls import canonicalize

logger = logging.getLogger(__name__)

Origin = tuple[str, int]  # (host, port): the port always given
T = TypeVar("T")

_DEFAULT_PORTS = {"http": 80, "https": 443}
SHARED_TTL_SECONDS = 30 * 24 * 3600


def _origin(url: str) -> Origin | None:
    """(host, port) of an http(s) URL; None for another scheme or a URL without a host."""
    try:
        parts = urlsplit(url)
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        if default is None:
            return None
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or default
    except ValueError:  # a port that is no number, or out of range
        return None
    return (host, port) if host else None


def _canonical(url: str) -> str | None:
    """The canonical form of a URL, None if it has none (a port out of range)."""
    try:
        return canonicalize(url)
    except ValueError:
        return None


def _rest(url: str) -> str:
    """What follows the origin of a URL: path and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def site_names(host: str) -> tuple[str, ...]:
    """The names of a host's site: with and without `www.` (see the module docstring).

    >>> site_names("www.example.co.uk"), site_names("127.0.0.1"), site_names("co.uk")
    (('example.co.uk', 'www.example.co.uk'), ('127.0.0.1',), ('co.uk',))
    """
    if _is_ip(host):
        return (host,)
    bare = host[4:] if host.startswith("www.") and not is_public_suffix(host[4:]) else host
    return (bare,) if is_public_suffix(bare) else (bare, "www." + bare)


def site_origins(origin: Origin) -> set[Origin]:
    """The origins of the site of `origin`: its names on 80, 443 and its own port."""
    host, port = origin
    return {(name, p) for name in site_names(host) for p in {80, 443, port}}


@lru_cache(maxsize=65536)
def domain_of(host: str) -> str:
    """The registered domain of a host name (an IP address is its own)."""
    return registered_domain(f"[{host}]" if ":" in host else host)


class Scope:
    """The URLs a crawl may fetch; `url in scope` tells (URLs canonical).

    `decide(url)` says why a URL is out (None: it is in); `learn(url)` adds a
    start URL's redirect target under the rule of the module docstring.
    """

    def __init__(self, start_urls: Iterable[str], allowed_domains: Iterable[str] = (),
                 include: Iterable[str] = (), exclude: Iterable[str] = (), *,
                 kind: ScopeKind = "site") -> None:
        self.kind: ScopeKind = kind
        self.allowed = [d.lower().rstrip(".") for d in allowed_domains]
        self.include = [re.compile(p) for p in include]
        self.exclude = [re.compile(p) for p in exclude]
        self._origins: set[Origin] = set()
        self._domains: set[str] = set()
        self._prefixes: dict[Origin, tuple[str, ...]] = {}
        starts = [_canonical(u) for u in start_urls]
        self.start_urls = frozenset(u for u in starts if u is not None and _origin(u))
        for url in self.start_urls:
            self._add(url)
        #: Start URLs' redirect targets added to the scope, in the order learned.
        self.learned: list[str] = []
        # With allowed_domains as the host part, only prefixes still come from URLs.
        self._kind_applies = not self.allowed or (kind == "prefix" and bool(self._prefixes))
        self.learns = kind != "host" and (not self.allowed or kind == "prefix")

    @classmethod
    def of(cls, params: CrawlParams) -> Scope:
        """The scope a job's parameters describe."""
        return cls(params.start_urls, params.allowed_domains, params.include, params.exclude,
                   kind=params.scope)

    def __contains__(self, url: str) -> bool:
        return self.decide(url) is None

    def decide(self, url: str) -> str | None:
        """None if `url` is in scope, else why not (the stat's last part)."""
        origin = _origin(url)
        if origin is None:
            return "scheme"
        if self.allowed and not self._allowed(origin):
            return "allowed_domains"
        if self._kind_applies and not self._in_kind(url, origin):
            return self.kind
        if self.include and not any(p.search(url) for p in self.include):
            return "include"
        if any(p.search(url) for p in self.exclude):
            return "exclude"
        return None

    def learn(self, url: str) -> bool:
        """Add a start URL's redirect target; whether the scope grew (always False for `host`)."""
        canonical = _canonical(url)
        origin = _origin(canonical) if canonical is not None else None
        if not self.learns or origin is None or self._in_kind(canonical, origin):
            return False
        url = canonical
        self._add(url)
        self._kind_applies = True  # (with allowed_domains only a prefix is learned)
        self.learned.append(url)
        return True

    def _add(self, url: str) -> None:
        origin = _origin(url)
        assert origin is not None
        if self.kind == "host":
            self._origins.add(origin)
        elif self.kind == "site":
            self._origins |= site_origins(origin)
        elif self.kind == "domain":
            self._domains.add(domain_of(origin[0]))
        else:
            rest = _rest(url)
            for o in site_origins(origin):
                self._prefixes[o] = (*self._prefixes.get(o, ()), rest)

    def _in_kind(self, url: str, origin: Origin) -> bool:
        if self.kind in ("site", "host"):
            return origin in self._origins
        if self.kind == "domain":
            return domain_of(origin[0]) in self._domains
        rests = self._prefixes.get(origin)
        return rests is not None and _rest(url).startswith(rests)

    def _allowed(self, origin: Origin) -> bool:
        host, port = origin
        key = f"{host}:{port}"
        return any(host == d or host.endswith("." + d) or key == d for d in self.allowed)


class SharedScope(Protocol):
    """Where the workers of a job keep the URLs they learned (`RedisScope`)."""

    async def add(self, url: str) -> None: ...
    async def count(self) -> int: ...
    async def members(self) -> set[str]: ...
    async def touch(self) -> None: ...
    async def close(self) -> None: ...


class RedisScope:
    """The learned URLs of a job: a Redis set, `crawlgraph:<job>:scope`."""

    def __init__(self, redis_url: str, job_id: str, *, give_up_after: float = 60.0) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(redis_url, socket_timeout=10,
                                              socket_connect_timeout=5)
        self.key = f"crawlgraph:{job_id}:scope"
        self.give_up_after = give_up_after

    async def _call(self, call: Callable[[], Awaitable[T]], default: T) -> T:
        """Run one Redis call, retried with backoff while Redis is unreachable.

        After `give_up_after` seconds the worker goes on with what it knows
        (`default`): its requests wait for Redis no longer than that.
        """
        import redis

        delay, waited = 0.1, 0.0
        while True:
            try:
                return await call()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                if waited >= self.give_up_after:
                    logger.warning("scope: Redis unavailable for %.0fs, deciding with this "
                                   "worker's scope only: %s", waited, exc)
                    return default
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    async def add(self, url: str) -> None:
        async def run() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.sadd(self.key, url)
                pipe.expire(self.key, SHARED_TTL_SECONDS)
                await pipe.execute()

        await self._call(run, None)

    async def count(self) -> int:
        return int(await self._call(lambda: self.client.scard(self.key), 0))

    async def members(self) -> set[str]:
        members = await self._call(lambda: self.client.smembers(self.key), set())
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def touch(self) -> None:
        await self._call(lambda: self.client.expire(self.key, SHARED_TTL_SECONDS), None)

    async def close(self) -> None:
        await self.client.aclose()


class ScopeMiddleware:
    """Spider middleware dropping the requests of a callback that leave the scope."""

    def __init__(self, crawler: Crawler, scope: Scope, shared: SharedScope | None = None) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.scope = scope
        self.shared = shared
        self._shared_count = 0  # the size of the shared set when last read

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        spider = kit_spider(crawler, "CRAWLGRAPH_SCOPE_ENABLED")
        scope = Scope.of(spider.args)
        shared = None
        redis_url = crawler.settings.get("CRAWLGRAPH_REDIS_URL")
        if scope.learns and spider.job_id and redis_url:
            shared = RedisScope(redis_url, str(spider.job_id))
        mw = cls(crawler, scope, shared)
        if shared is not None:
            crawler.signals.connect(mw._opened, signal=signals.spider_opened)
            crawler.signals.connect(mw._closed, signal=signals.spider_closed)
        return mw

    async def _opened(self) -> None:
        assert self.shared is not None
        await self.shared.touch()

    async def _closed(self) -> None:
        assert self.shared is not None
        await self.shared.close()

    async def process_spider_output(self, response: Response,
                                    result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        await self._learn_from(response)
        asked = self.shared is None
        async for out in result:
            if isinstance(out, Request):
                why = self.scope.decide(out.url)
                if why == self.scope.kind and not asked:
                    asked = True  # once per response: did another worker learn it?
                    if await self._adopt():
                        why = self.scope.decide(out.url)
                if why is not None:
                    self.stats.inc_value("crawlgraph/offsite")
                    self.stats.inc_value(f"crawlgraph/offsite/{why}")
                    continue
            yield out

    async def _learn_from(self, response: Response) -> None:
        """A start URL's redirect target joins the scope, before any request of it leaves."""
        if not self.scope.learns or response.request is None:
            return
        redirects = response.meta.get("redirect_urls")
        if not redirects or response.meta.get("depth", 0) != 0:
            return
        if _canonical(redirects[0]) not in self.scope.start_urls:
            return
        if not self.scope.learn(response.url):
            return
        url = self.scope.learned[-1]
        self.stats.inc_value("crawlgraph/scope/learned")
        logger.info("scope: %s joins the %s scope (start URL %s redirects there)", url,
                    self.scope.kind, redirects[0])
        if self.shared is not None:
            await self.shared.add(url)

    async def _adopt(self) -> bool:
        """Take in what other workers learned since last asked; whether the scope grew."""
        assert self.shared is not None
        count = await self.shared.count()
        if count == self._shared_count:
            return False
        members = await self.shared.members()
        self._shared_count = len(members)
        adopted = [url for url in sorted(members) if self.scope.learn(url)]
        if adopted:
            self.stats.inc_value("crawlgraph/scope/adopted", len(adopted))
            logger.info("scope: adopted %s, learned by other workers", ", ".join(adopted))
        return bool(adopted)
