"""The `site` spider: crawl websites and store their pages and link graph.

From `start_urls`, it follows every link of every HTML page (`rel=nofollow`
ones only with `follow_nofollow`); the kit's spider middlewares keep it in
the scope (the start hosts, or `allowed_domains`; `include`/`exclude`
regexes; `max_depth`; `max_pages`) and store a Page for every response and a
Link for every hyperlink, in scope or not. Arguments: see `SpiderArgs` in
`crawler.spiders.args`.

    scrapy crawl site -a start_urls='["https://example.org/"]' -a max_depth=2
"""

from __future__ import annotations

from collections.abc import Iterator

from scrapy.http import Request, Response

from crawler.spiders.base import CrawlgraphSpider
from crawler.spiders.links import extract_links


class SiteSpider(CrawlgraphSpider):
    """Crawl whole sites: every in-scope link is followed."""

    name = "site"

    def parse(self, response: Response) -> Iterator[Request]:
        """Every link of the page; the kit drops those out of scope, too deep or over budget."""
        for link in extract_links(response):
            if self.args.follow_nofollow or not link.nofollow:
                yield Request(link.url, callback=self.parse)
