"""The spider kit's spider middlewares: what `CrawlgraphSpider`'s callbacks get for free.

On in `crawler.settings` (`SPIDER_MIDDLEWARES`), for spiders of the kit only
(a `CrawlgraphSpider`; any other spider passes through untouched). A
callback's output passes them from the highest number down:

- 980 `canonical.CanonicalUrlMiddleware`: requests get their canonical URL;
- 970 `scope.ScopeMiddleware`: requests leaving the scope are dropped;
- 960 `depth.MaxDepthMiddleware`: requests deeper than `max_depth` are dropped;
- 955 `traps.TrapsMiddleware`: crawler traps are cut (URL length, a repeated
  path segment, too many query variants of one path), each recorded once;
- (Scrapy's DepthMiddleware 900, UrlLengthMiddleware 800, RefererMiddleware 700)
- 560 `pages.PagesMiddleware`: a `Page` and the `Link` items of every response
  come first; requests without an errback get the spider's `on_failure`;
- 550 `render.RenderMiddleware`: `render_js` (mark requests, re-render pages);
- 540 `budget.PageBudgetMiddleware`: `max_pages`.

Each module says what its component does and which settings it reads; each
is switched off by its `CRAWLGRAPH_<NAME>_ENABLED` setting or by mapping it to
None in `SPIDER_MIDDLEWARES`. The job's parameters come from the spider's
arguments (`spider.args`), never from settings.
"""

from __future__ import annotations

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler.spiders.base import CrawlgraphSpider


def kit_spider(crawler: Crawler, enabled: str) -> CrawlgraphSpider:
    """The crawler's spider if it is a kit spider and the component is on; else NotConfigured.

    `enabled` names the component's on/off setting (default on). A spider of
    another kind leaves the component off without a word in the log.
    """
    if not crawler.settings.getbool(enabled, True):
        raise NotConfigured(f"{enabled} is off")
    if not isinstance(crawler.spider, CrawlgraphSpider):
        raise NotConfigured
    return crawler.spider
