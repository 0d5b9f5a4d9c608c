"""The kit's spider middlewares on a kit spider, without a reactor or a network.

`kit_crawler(args, settings)` builds a crawler the way `Crawler.crawl` does
(the project's settings, the spider from its arguments, then the components)
and its spider middlewares, but without an engine (`RecordingEngine` stands in);
`scrape(crawler, response, output)` passes a response
and its callback's output through the project's spider middlewares, in their
order, and returns what leaves them towards the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from scrapy.core.spidermw import SpiderMiddlewareManager
from scrapy.crawler import Crawler
from scrapy.http import HtmlResponse, Request, Response
from scrapy.settings import Settings
from scrapy.spiders import Spider
from scrapy.utils.test import get_reactor_settings

from crawler.spiders.site import SiteSpider

_managers: WeakKeyDictionary[Crawler, SpiderMiddlewareManager] = WeakKeyDictionary()


class PlainSpider(Spider):
    """A spider outside the kit: the kit's middlewares leave it alone."""

    name = "plain"


class RecordingEngine:
    """Stands in for the engine: keeps what is scheduled with `crawl()`."""

    def __init__(self) -> None:
        self.crawled: list[Request] = []

    def crawl(self, request: Request) -> None:
        self.crawled.append(request)


def kit_crawler(args: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                spidercls: type[Spider] = SiteSpider) -> Crawler:
    """A crawler with the project's settings and a spider made from `args`."""
    project = Settings()
    project.setmodule("crawler.settings", priority="project")
    project.setdict({"EXTENSIONS": {}, **get_reactor_settings(), **(settings or {})},
                    priority="cmdline")
    crawler = Crawler(spidercls, project)
    crawler.spider = crawler._create_spider(**(args or {}))
    crawler._apply_settings()
    crawler.engine = RecordingEngine()  # type: ignore[assignment]
    _managers[crawler] = SpiderMiddlewareManager.from_crawler(crawler)
    return crawler


def page(url: str, body: str = "", *, meta: dict[str, Any] | None = None,
         status: int = 200) -> HtmlResponse:
    """An HTML response to a GET of `url`."""
    request = Request(url, meta=meta or {})
    return HtmlResponse(url, status=status, body=body.encode(), request=request,
                        headers={"Content-Type": "text/html; charset=utf-8"})


def scrape(crawler: Crawler, response: Response, output: Iterable[Any] = ()) -> list[Any]:
    """What the spider middlewares let out of `response` with its callback's `output`."""
    manager = _managers[crawler]

    async def callback(result: Any, request: Request) -> Iterable[Any]:
        return output

    async def run() -> list[Any]:
        chain = await manager.scrape_response_async(callback, response, response.request)
        return [out async for out in chain]

    return asyncio.run(run())


def start(crawler: Crawler) -> list[Any]:
    """The spider's start requests as they leave the spider middlewares."""
    manager = _managers[crawler]

    async def run() -> list[Any]:
        return [out async for out in await manager.process_start()]

    return asyncio.run(run())
