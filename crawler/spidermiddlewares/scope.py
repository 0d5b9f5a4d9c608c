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

import logging
from collections.abc import AsyncIterator
from typing import Any, Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response

from crawler.scope import Scope, canonical_or_none
from crawler.spidermiddlewares import kit_spider
from crawler.spidermiddlewares.scopeshare import RedisScope, SharedScope

logger = logging.getLogger(__name__)


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
        if canonical_or_none(redirects[0]) not in self.scope.start_urls:
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
