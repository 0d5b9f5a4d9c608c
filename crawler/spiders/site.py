"""The `site` spider: crawl websites and store their pages and link graph.

From `start_urls`, it follows every link of every HTML page (`rel=nofollow`
ones only with `follow_nofollow`); the kit's spider middlewares keep it in
the scope (the start hosts, or `allowed_domains`; `include`/`exclude`
regexes; `max_depth`; `max_pages`) and store a Page for every response and a
Link for every hyperlink, in scope or not. Arguments: see `SpiderArgs` in
`crawler.spiders.args`.

**Sitemaps.** With `sitemaps`, a start page's response (depth 0) also asks
for its host's sitemaps: the robots.txt `Sitemap:` lines (read by then: the
robots middleware fetched robots.txt before the page) and `/sitemap.xml`.
A sitemap file is no page (`crawler.sitemaps.SITEMAP_META`: no Page, no
Links, no budget); an index asks for the sitemaps it lists (up to
`MAX_NESTING` files deep), a URL set for its pages, marked
`discovered: sitemap` (`crawler.sitemaps.DISCOVERED_META`), and no link is
stored for them. Sitemap files start again at depth 0 (Scrapy's
`depth_reset`), so a listed page is at depth 1, as if the start page linked
to it; files and pages alike pass the scope, `include`/`exclude`, depth and
budget as links do (a sitemap on another host is not read unless it is in
scope). A file that fails or is not a sitemap is counted and skipped. Stats:
`crawlgraph/sitemaps/files`, `…/urls`, `…/cut` (entries past 50,000 in one
file), `…/too_big` (over 50 MB uncompressed), `…/not_sitemap`, `…/failed`,
`…/too_nested`.

    scrapy crawl site -a start_urls='["https://example.org/"]' -a max_depth=2
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from scrapy.http import Request, Response
from twisted.python.failure import Failure

from crawler.sitemaps import DISCOVERED_META, SITEMAP_META, read_sitemap
from crawler.spiders.base import CrawlgraphSpider
from crawler.spiders.links import extract_links

logger = logging.getLogger(__name__)

#: Sitemap files read below the first one (robots.txt or /sitemap.xml): an index,
#: and an index listed by an index (sitemaps.org allows one level; sites nest more).
MAX_NESTING = 3


class SiteSpider(CrawlgraphSpider):
    """Crawl whole sites: every in-scope link is followed."""

    name = "site"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Request]:
        """Every link of the page; the kit drops those out of scope, too deep or over budget."""
        if self.args.sitemaps and response.meta.get("depth", 0) == 0:
            yield from self._sitemaps_of(response)
        for link in extract_links(response):
            if self.args.follow_nofollow or not link.nofollow:
                yield Request(link.url, callback=self.parse)

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        """The sitemaps an index lists, or the pages a URL set lists."""
        stats = self.crawler.stats
        level = int(response.meta.get(SITEMAP_META, 1))
        if response.status >= 300:
            stats.inc_value("crawlgraph/sitemaps/failed")
            return
        found = read_sitemap(response.body, response.url)
        stats.inc_value("crawlgraph/sitemaps/files")
        if found.too_big:
            stats.inc_value("crawlgraph/sitemaps/too_big")
            logger.warning("sitemap %s is over 50 MB uncompressed: not read", response.url)
        elif found.kind == "none":
            stats.inc_value("crawlgraph/sitemaps/not_sitemap")
        if found.cut:
            stats.inc_value("crawlgraph/sitemaps/cut", found.cut)
            logger.warning("sitemap %s lists more than 50,000 URLs: %d not read",
                           response.url, found.cut)
        if found.kind == "index":
            if level >= MAX_NESTING:
                stats.inc_value("crawlgraph/sitemaps/too_nested", len(found.urls))
                return
            for url in found.urls:
                yield self._sitemap_request(url, level + 1)
        elif found.kind == "urlset":
            stats.inc_value("crawlgraph/sitemaps/urls", len(found.urls))
            for url in found.urls:
                yield Request(url, callback=self.parse, meta={DISCOVERED_META: "sitemap"})

    def sitemap_failed(self, failure: Failure) -> Iterable[Any]:
        """A sitemap file that could not be fetched is counted, never stored as a page."""
        self.crawler.stats.inc_value("crawlgraph/sitemaps/failed")
        return ()

    def _sitemaps_of(self, response: Response) -> Iterator[Request]:
        parts = urlsplit(response.url)
        urls = [*self.robots_sitemaps(response.url),
                f"{parts.scheme}://{parts.netloc}/sitemap.xml"]
        for url in dict.fromkeys(urls):
            yield self._sitemap_request(url, 1)

    def _sitemap_request(self, url: str, level: int) -> Request:
        # depth_reset: Scrapy's DepthMiddleware gives the file depth 0, its pages 1.
        return Request(url, callback=self.parse_sitemap, errback=self.sitemap_failed,
                       meta={SITEMAP_META: level, "depth_reset": True})
