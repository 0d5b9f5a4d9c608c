"""The crawling components and their defaults, for `crawler/settings.py` to merge.

    from crawler.middlewares.defaults import CRAWLING_DOWNLOADER_MIDDLEWARES, CRAWLING_SETTINGS

The middlewares replace Scrapy's robots.txt, user-agent and retry middlewares
(mapped to None here) and Scrapy's own delay/AutoThrottle (kept off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CRAWLING_DOWNLOADER_MIDDLEWARES: dict[str, int | None] = {
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": None,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    # Before robots.txt: a private host's robots.txt is not fetched either.
    "crawler.middlewares.addressguard.AddressGuardMiddleware": 60,
    "crawler.middlewares.robots.RobotsMiddleware": 100,
    "crawler.middlewares.useragents.UserAgentRotationMiddleware": 500,
    "crawler.middlewares.retries.RetryBackoffMiddleware": 550,
    # Between decompression (590) and meta refresh (580): a page whose <base href>
    # does not parse is read with its own URL as its base.
    "crawler.middlewares.basehref.BaseHrefMiddleware": 585,
    # Sees a 403/CAPTCHA before the retry middleware turns it into a retry.
    "crawler.middlewares.blocks.BlockDetectionMiddleware": 560,
    # Last before the download: the slot is reserved as late as possible, and
    # its process_response sees the latency first.
    "crawler.middlewares.throttle.ThrottleMiddleware": 950,
}

MAX_DOWNLOAD_BYTES = 10 * 1024 * 1024

CRAWLING_SETTINGS: dict[str, Any] = {
    "AUTOTHROTTLE_ENABLED": False,  # ThrottleMiddleware replaces it, shared by workers
    "DOWNLOAD_DELAY": 0,
    "DOWNLOAD_MAXSIZE": MAX_DOWNLOAD_BYTES,
    "DOWNLOAD_WARNSIZE": MAX_DOWNLOAD_BYTES // 2,
    "DOWNLOAD_TIMEOUT": 30,
    "DNS_TIMEOUT": 10,
    "RETRY_TIMES": 3,
    "RETRY_HTTP_CODES": [500, 502, 503, 504, 522, 524, 408, 429],
    "REDIRECT_MAX_TIMES": 10,
    "TEMPLATES_DIR": str(Path(__file__).resolve().parent.parent / "templates"),
    "CRAWLGRAPH_ROBOTS_TOKEN": "crawlgraph",
    "CRAWLGRAPH_THROTTLE_MIN_DELAY": 0.0,
    "CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY": 8,
    "CRAWLGRAPH_USER_AGENT_MODE": "request",
}
