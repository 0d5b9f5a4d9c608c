"""Crawler traps are bounded: over-long URLs, self-nesting paths and endless query variants.

A site can offer endless URLs: a calendar whose every month links to the next,
a relative link that nests a path in itself (`/a/` links to `a/`), a faceted
search whose filters combine without end, session ids in every link. Three
limits cut the requests of a callback that look like one, each a setting (0:
no limit):

- ``CRAWLGRAPH_TRAPS_MAX_URL_LENGTH`` [2048, the longest start URL a job
  takes]: a URL longer than this many characters (canonical form; below
  Scrapy's ``URLLENGTH_LIMIT``, 2083, so that this middleware, which records,
  sees them first);
- ``CRAWLGRAPH_TRAPS_MAX_SEGMENT_REPEATS`` [3]: a path in which one segment
  occurs more than this many times, anywhere in it: `/x/x/x/x/`, and loops of
  any period (`/a/b/a/b/a/b/a/b/`). Empty segments do not count; segments are
  compared as written in the canonical URL;
- ``CRAWLGRAPH_TRAPS_MAX_QUERY_VARIANTS`` [100]: more distinct query strings
  than this of one scheme, host and path. A query already let through passes
  again (the frontier's seen-set drops the duplicate); the path without a
  query is no variant.

Checked in that order; a request one limit cuts is not counted by the next.
Requests are judged in canonical form (the canonical-URL middleware runs
first), after the scope and `max_depth` have dropped theirs, so only requests
that would be queued spend a path's variants. Start requests pass.

**Several workers.** A job's workers share one frontier, so a path's
variants are counted for the job, in Redis: a set of query hashes per path,
`crawlgraph:<job>:traps:q:<hash of the path>`, filled by one script that
admits a query if it is a member or the set is not full (so a response
fetched again after a worker died gets the same answer), kept 30 days after
its last write. Each worker remembers the queries it was told to let through
and asks Redis only about others. Without a job id or `CRAWLGRAPH_REDIS_URL`
(a local crawl), or while Redis does not answer, the count is this worker's.

**Recorded.** Each cut is counted, `crawlgraph/trap/<kind>` (`url_length`,
`repeated_segment`, `query_variants`), and the first cut of each pattern is a
crawl event (`trap_<kind>`, `crawler.middlewares.ledger`) with that URL as
its example and the rule in its detail, once per job (a Redis key
`crawlgraph:<job>:traps:e:<hash>` claims it) or, locally, once per worker.
The pattern is the origin and the path for `query_variants`, the origin and
the repeated segment for `repeated_segment`, the origin and the first path
segment for `url_length`. A worker records at most 1000 events per kind;
beyond that it only counts.

On in `crawler.settings`; off with `CRAWLGRAPH_TRAPS_ENABLED = False`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response

from crawler.middlewares.ledger import CrawlLedger
from crawler.spidermiddlewares import kit_spider
from crawler.spiders.args import MAX_URL_LENGTH
from crawler.urls import host_key

logger = logging.getLogger(__name__)

SHARED_TTL_SECONDS = 30 * 24 * 3600
MAX_EVENTS_PER_KIND = 1000

# Admit ARGV[1] to the set KEYS[1] if it is a member or the set has fewer than
# ARGV[2] members; 1 if admitted. One script: two workers never both take the last place.
_ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class Variants(Protocol):
    """The query strings let through per path, and the events claimed."""

    async def admit(self, path: str, query: str, limit: int) -> bool: ...
    async def claim(self, kind: str, pattern: str) -> bool: ...
    async def close(self) -> None: ...


class LocalVariants:
    """This worker's count: a set of query hashes per path, at most `limit` each."""

    def __init__(self) -> None:
        self._queries: dict[str, set[str]] = {}
        self._claimed: set[tuple[str, str]] = set()

    def known(self, path: str, query: str) -> bool:
        return _digest(query) in self._queries.get(path, ())

    async def admit(self, path: str, query: str, limit: int) -> bool:
        queries = self._queries.setdefault(path, set())
        digest = _digest(query)
        if digest in queries:
            return True
        if len(queries) >= limit:
            return False
        queries.add(digest)
        return True

    def remember(self, path: str, query: str) -> None:
        self._queries.setdefault(path, set()).add(_digest(query))

    async def claim(self, kind: str, pattern: str) -> bool:
        if (kind, pattern) in self._claimed:
            return False
        self._claimed.add((kind, pattern))
        return True

    async def close(self) -> None:
        pass


class RedisVariants:
    """The job's count, in Redis (see the module docstring); this worker's while Redis is away."""

    def __init__(self, redis_url: str, job_id: str) -> None:
        from crawler.redisclient import client_for

        self.client = client_for(redis_url)
        self.prefix = f"crawlgraph:{job_id}:traps:"
        self._admit = self.client.register_script(_ADMIT)
        self.local = LocalVariants()
        self._warned = False

    async def admit(self, path: str, query: str, limit: int) -> bool:
        import redis

        if self.local.known(path, query):
            return True
        try:
            admitted = bool(await self._admit(keys=[f"{self.prefix}q:{_digest(path)}"],
                                              args=[_digest(query), limit,
                                                    SHARED_TTL_SECONDS]))
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            self._warn(exc)
            return await self.local.admit(path, query, limit)
        if admitted:
            self.local.remember(path, query)
        return admitted

    async def claim(self, kind: str, pattern: str) -> bool:
        import redis

        if not await self.local.claim(kind, pattern):
            return False
        try:
            key = f"{self.prefix}e:{_digest(f'{kind} {pattern}')}"
            return bool(await self.client.set(key, b"1", nx=True, ex=SHARED_TTL_SECONDS))
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            self._warn(exc)
            return True

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("traps: Redis unavailable, counting query variants in this "
                           "worker only: %s", exc)

    async def close(self) -> None:
        await self.client.aclose()


class TrapsMiddleware:
    """Spider middleware cutting a callback's requests that fall into a crawler trap."""

    def __init__(self, crawler: Crawler, *, max_url_length: int = MAX_URL_LENGTH,
                 max_segment_repeats: int = 3, max_query_variants: int = 100,
                 variants: Variants | None = None) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.max_url_length = max_url_length
        self.max_segment_repeats = max_segment_repeats
        self.max_query_variants = max_query_variants
        self.variants: Variants = variants or LocalVariants()
        self.ledger = CrawlLedger.for_crawler(crawler)
        self._events: Counter[str] = Counter()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        spider = kit_spider(crawler, "CRAWLGRAPH_TRAPS_ENABLED")
        s = crawler.settings
        limits = {"max_url_length": s.getint("CRAWLGRAPH_TRAPS_MAX_URL_LENGTH", MAX_URL_LENGTH),
                  "max_segment_repeats": s.getint("CRAWLGRAPH_TRAPS_MAX_SEGMENT_REPEATS", 3),
                  "max_query_variants": s.getint("CRAWLGRAPH_TRAPS_MAX_QUERY_VARIANTS", 100)}
        if not any(v > 0 for v in limits.values()):
            raise NotConfigured("every CRAWLGRAPH_TRAPS_MAX_* limit is 0")
        variants: Variants | None = None
        redis_url = s.get("CRAWLGRAPH_REDIS_URL")
        if spider.job_id and redis_url:
            variants = RedisVariants(redis_url, str(spider.job_id))
            crawler.signals.connect(variants.close, signal=signals.spider_closed)
        return cls(crawler, **limits, variants=variants)

    async def process_spider_output(self, response: Response,
                                    result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for out in result:
            if isinstance(out, Request) and await self._cut(out):
                continue
            yield out

    async def _cut(self, request: Request) -> bool:
        """Whether `request` falls into a trap; if so it is counted and perhaps recorded."""
        url = request.url
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if 0 < self.max_url_length < len(url):
            first = next((s for s in parts.path.split("/") if s), "")
            await self._record("url_length", f"{origin}/{first}", url,
                               f"URL of {len(url)} characters, more than "
                               f"{self.max_url_length} (CRAWLGRAPH_TRAPS_MAX_URL_LENGTH)")
            return True
        if self.max_segment_repeats > 0:
            counts = Counter(s for s in parts.path.split("/") if s)
            if counts:
                segment, times = counts.most_common(1)[0]
                if times > self.max_segment_repeats:
                    await self._record("repeated_segment", f"{origin} {segment}", url,
                                       f"path segment {segment!r} {times} times, more than "
                                       f"{self.max_segment_repeats} "
                                       "(CRAWLGRAPH_TRAPS_MAX_SEGMENT_REPEATS)")
                    return True
        if self.max_query_variants > 0 and parts.query:
            path = f"{origin}{parts.path}"
            if not await self.variants.admit(path, parts.query, self.max_query_variants):
                await self._record("query_variants", path, url,
                                   f"more than {self.max_query_variants} distinct query "
                                   f"strings of {path} (CRAWLGRAPH_TRAPS_MAX_QUERY_VARIANTS)")
                return True
        return False

    async def _record(self, kind: str, pattern: str, url: str, detail: str) -> None:
        self.stats.inc_value(f"crawlgraph/trap/{kind}")
        if self._events[kind] >= MAX_EVENTS_PER_KIND:
            return
        if await self.variants.claim(kind, pattern):
            self._events[kind] += 1
            self.ledger.event(f"trap_{kind}", host_key(url), url, None, detail)
