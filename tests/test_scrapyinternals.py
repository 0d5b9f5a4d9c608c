"""The private parts of Scrapy crawlgraph relies on (`crawler.scrapyinternals`) are still there.

A real crawl (subprocess, mock server) whose spider probes each of them from
its callbacks: if a Scrapy upgrade renames or reshapes one, this test fails
before the frontier silently stops acknowledging or the engine stops waking.
"""

from __future__ import annotations

from typing import Any

import scrapy

from crawler import scrapyinternals
from tests.crawlrun import run_crawl

LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True, "ROBOTSTXT_OBEY": False}


class ProbeSpider(scrapy.Spider):
    """Fetches two pages one after the other and reports what the internals showed."""

    name = "probe"

    def __init__(self, origin: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.origin = origin
        self.first_request: scrapy.Request | None = None

    async def start(self) -> Any:
        yield scrapy.Request(f"{self.origin}/p/0", callback=self.first)

    def first(self, response: scrapy.http.Response) -> Any:
        self.first_request = response.request
        held = scrapyinternals.requests_in_progress(self.crawler)
        scrapyinternals.wake_engine(self.crawler)
        yield {"probe": "first",
               "held_while_scraped": response.request in held,
               "http_handler": type(scrapyinternals.download_handler(self.crawler,
                                                                     "http")).__name__}
        yield scrapy.Request(f"{self.origin}/p/1", callback=self.second)

    def second(self, response: scrapy.http.Response) -> Any:
        held = scrapyinternals.requests_in_progress(self.crawler)
        yield {"probe": "second",
               "first_released": self.first_request not in held,
               "second_held": response.request in held}


def test_the_internals_crawlgraph_relies_on_are_where_it_expects_them(mock_server) -> None:
    server = mock_server(pages=3)
    result = run_crawl("tests.test_scrapyinternals.ProbeSpider", {"origin": server.origin},
                       LOOPBACK)
    assert "Traceback" not in result.log, result.log[-3000:]
    probes = {item.pop("probe"): item for item in result.other}
    assert probes["first"] == {"held_while_scraped": True, "http_handler": "HTTP11DownloadHandler"}
    assert probes["second"] == {"first_released": True, "second_held": True}

