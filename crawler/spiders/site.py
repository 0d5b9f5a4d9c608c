"""The `site` spider: crawl websites and store their pages and link graph.

From `start_urls`, it follows every link inside the scope (the start hosts,
or `allowed_domains`; `include`/`exclude` regexes; `max_depth`; `max_pages`;
`rel=nofollow` links only with `follow_nofollow`), storing a Page for every
response and a Link for every hyperlink, in scope or not. Arguments: see
`SpiderArgs` in `crawler.spiders.base`.

    scrapy crawl site -a start_urls='["https://example.org/"]' -a max_depth=2
"""

from __future__ import annotations

from crawler.spiders.base import CrawlgraphSpider


class SiteSpider(CrawlgraphSpider):
    """Crawl whole sites: every in-scope link is followed."""

    name = "site"
    follow_links = True
