"""`example`: a listing-and-detail spider, the one "Writing a spider" walks through.

The listing page links to detail pages; the spider follows every listing link
to a detail page and yields one `Summary` item per detail page. Everything else
(robots.txt, throttling, user agents, retries, scope, the frontier, Page and
Link items and storage) comes from the spider kit: `CrawlgraphSpider` and the
kit's spider middlewares (`crawler.spidermiddlewares`).

    scrapy crawl example -a start_urls='["http://127.0.0.1:8801/p/0"]'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from scrapy.http import Request, Response

from crawler.spiders.base import CrawlgraphSpider


@dataclass(kw_only=True)
class Summary:
    """What the example collects from a detail page (stored in the `items` table)."""

    url: str
    title: str
    words: int


class ExampleSpider(CrawlgraphSpider):
    name = "example"

    def parse(self, response: Response) -> Iterator[Request]:
        """The listing: follow each entry to its detail page."""
        for href in response.css("ul li a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_detail)

    def parse_detail(self, response: Response) -> Iterator[Summary]:
        """A detail page: one Summary item."""
        text = " ".join(response.css("p::text").getall())
        yield Summary(url=response.url, title=response.css("h1::text").get(default=""),
                      words=len(text.split()))
