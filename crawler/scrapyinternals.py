"""The private parts of Scrapy that crawlgraph relies on, all in this module.

Scrapy (2.19) offers no signal or public attribute for these three things;
everything else in crawlgraph goes through Scrapy's public API. If an upgrade
of Scrapy moves one of them, `tests/test_scrapyinternals.py` fails. Each takes
a crawler whose crawl has started: before that, `crawler.engine` raises
RuntimeError (Scrapy 2.19) rather than being None.

- `requests_in_progress(crawler)`: the requests the engine is working on,
  from the start of their download until the spider has handled their response
  and every item it produced has been through the item pipelines
  (``ExecutionEngine._slot.inprogress``). The frontier acknowledges a lease
  once its request has left this set.
- `wake_engine(crawler)`: make the engine ask its scheduler for requests now
  rather than at its next heartbeat (``_slot.nextcall.schedule()``).
- `download_handler(crawler, scheme)`: the download handler of a URL scheme
  (``downloader.handlers._get_handler``), e.g. scrapy-playwright's, which holds
  the browser contexts.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler


def _slot(crawler: Crawler) -> Any:
    """The engine's per-spider state; None before the spider opens and after it closed."""
    return getattr(crawler.engine, "_slot", None)


def requests_in_progress(crawler: Crawler) -> Container[Request] | None:
    """The requests the engine has not finished with, or None while no spider is open."""
    slot = _slot(crawler)
    return None if slot is None else slot.inprogress


def wake_engine(crawler: Crawler) -> None:
    """Have the engine look for requests (or notice it is idle) now; a no-op while closing."""
    slot = _slot(crawler)
    if slot is not None and slot.closing is None:
        slot.nextcall.schedule()


def download_handler(crawler: Crawler, scheme: str) -> Any:
    """The download handler for `scheme` ("http", "https" ...), or None if it has none."""
    return crawler.engine.downloader.handlers._get_handler(scheme)
