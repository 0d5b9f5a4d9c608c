"""Block detection: notice when a site starts refusing us, slow down, record it.

Signals: a CAPTCHA or bot-challenge page (markers in the first bytes of an
HTML body, configurable with `CRAWLGRAPH_BLOCK_MARKERS`), and a burst of 403
answers from one host (`CRAWLGRAPH_BLOCK_403_BURST` within
`CRAWLGRAPH_BLOCK_403_WINDOW` seconds). Each is recorded on the job
(`crawl_events`, kinds `captcha` and `forbidden_burst`; stats `blocks/*`) and
announced with the `host_blocked` signal (`crawler.middlewares.signals`), on
which the throttle doubles the host's delay in its shared state (at least 1 s).
The response itself goes on to the spider unchanged (its page is stored).

On by default; `CRAWLGRAPH_BLOCK_DETECTION = False` turns it off.
"""

from __future__ import annotations

import collections
import re
import time
from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response, TextResponse

from crawler.middlewares.ledger import CrawlLedger
from crawler.middlewares.signals import host_blocked
from crawler.urls import host_key

DEFAULT_MARKERS = [
    r"g-recaptcha", r"h-captcha", r"hcaptcha\.com", r"cf-challenge", r"challenge-platform",
    r"are you a robot", r"verify (that )?you are (a )?human", r"unusual traffic",
    r"attention required", r"captcha",
]
_SCAN_BYTES = 32 * 1024


class BlockDetectionMiddleware:
    """Downloader middleware detecting CAPTCHA pages and 403 bursts."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.crawler = crawler
        markers = s.getlist("CRAWLGRAPH_BLOCK_MARKERS") or DEFAULT_MARKERS
        self.markers = re.compile("|".join(f"(?:{m})" for m in markers), re.IGNORECASE)
        self.burst = s.getint("CRAWLGRAPH_BLOCK_403_BURST", 5)
        self.window = s.getfloat("CRAWLGRAPH_BLOCK_403_WINDOW", 60.0)
        self.ledger = CrawlLedger.for_crawler(crawler)
        self._forbidden: dict[str, collections.deque[float]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("CRAWLGRAPH_BLOCK_DETECTION", True):
            raise NotConfigured("block detection is off")
        return cls(crawler)

    async def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.get("crawlgraph_robots"):
            return response
        host = host_key(response.url)
        if response.status == 403:
            times = self._forbidden.setdefault(host, collections.deque())
            now = time.monotonic()
            times.append(now)
            while times and times[0] < now - self.window:
                times.popleft()
            if len(times) >= self.burst:
                times.clear()
                await self._blocked("forbidden_burst", host, response,
                                    f"{self.burst} answers 403 within {self.window:.0f}s")
        if isinstance(response, TextResponse) and b"html" in (
                response.headers.get(b"Content-Type") or b"").lower():
            head = response.body[:_SCAN_BYTES].decode("utf-8", errors="replace")
            found = self.markers.search(head)
            if found:
                await self._blocked("captcha", host, response, f"marker {found.group(0)!r}")
        return response

    async def _blocked(self, kind: str, host: str, response: Response, detail: str) -> None:
        self.crawler.stats.inc_value(f"blocks/{kind}")
        self.ledger.event(kind, host, response.url, response.status, detail)
        await self.crawler.signals.send_catch_log_async(signal=host_blocked, url=response.url,
                                                        kind=kind)
