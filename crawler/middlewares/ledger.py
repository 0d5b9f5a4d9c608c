"""The crawl ledger: robots decisions and crawl events of a job, written to Postgres.

Middlewares record what they decided (`robots_decision`) and what they saw
(`event`: a CAPTCHA, a burst of 403s, a download cut off); the ledger keeps
them in memory and writes them in batches, off the event loop, every
`CRAWLGRAPH_LEDGER_FLUSH_SECONDS` and when the spider closes, into the tables
of `migrations/0003_crawling.sql`. Without a job id or a database URL
(``CRAWLGRAPH_DATABASE_URL``) it only logs and counts. One ledger per
crawler: `CrawlLedger.for_crawler(crawler)`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

INSERT_ROBOTS = """
INSERT INTO robots_decisions (job_id, url, host, decision, robots_status)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (job_id, url) DO NOTHING
"""
INSERT_EVENT = """
INSERT INTO crawl_events (job_id, host, kind, url, status, detail)
VALUES (%s, %s, %s, %s, %s, %s)
"""
_ATTR = "_crawlgraph_ledger"
_MAX_BUFFER = 100_000


class CrawlLedger:
    """Buffered writer of robots decisions and crawl events for one crawler."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.crawler = crawler
        self.database_url = s.get("CRAWLGRAPH_DATABASE_URL") or None
        self.flush_seconds = s.getfloat("CRAWLGRAPH_LEDGER_FLUSH_SECONDS", 2.0)
        self.job_id: str | None = None
        self._robots: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []
        self._last_flush = time.monotonic()
        self._lock = asyncio.Lock()
        crawler.signals.connect(self._opened, signals.spider_opened)
        crawler.signals.connect(self._closed, signals.spider_closed)

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> CrawlLedger:
        ledger = getattr(crawler, _ATTR, None)
        if ledger is None:
            ledger = cls(crawler)
            setattr(crawler, _ATTR, ledger)
        return ledger

    @property
    def enabled(self) -> bool:
        return bool(self.job_id and self.database_url)

    def _opened(self, spider: Any) -> None:
        job_id = getattr(spider, "job_id", None)
        self.job_id = str(job_id) if job_id else None

    async def _closed(self, spider: Any) -> None:
        await self.flush()

    def robots_decision(self, url: str, host: str, decision: str,
                        robots_status: int | None) -> None:
        self.crawler.stats.inc_value(f"ledger/robots/{decision}")
        if self.enabled and len(self._robots) < _MAX_BUFFER:
            self._robots.append((self.job_id, url, host, decision, robots_status))
            self._maybe_flush()

    def event(self, kind: str, host: str, url: str | None = None, status: int | None = None,
              detail: str = "") -> None:
        self.crawler.stats.inc_value(f"ledger/events/{kind}")
        logger.warning("crawl event %s on %s: %s %s", kind, host, url or "", detail)
        if self.enabled and len(self._events) < _MAX_BUFFER:
            self._events.append((self.job_id, host, kind, url, status, detail[:2000]))
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self._last_flush = time.monotonic()
            asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        async with self._lock:
            robots, self._robots = self._robots, []
            events, self._events = self._events, []
            if not (robots or events) or not self.enabled:
                return
            try:
                await asyncio.to_thread(self._write, robots, events)
            except Exception:
                logger.exception("could not write %d robots decisions and %d crawl events",
                                 len(robots), len(events))

    def _write(self, robots: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> None:
        import psycopg

        with psycopg.connect(self.database_url, connect_timeout=10) as conn, \
                conn.cursor() as cur:
            if robots:
                cur.executemany(INSERT_ROBOTS, robots)
            if events:
                cur.executemany(INSERT_EVENT, events)
