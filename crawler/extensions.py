"""Job state and live stats in the `jobs` row.

Switch it on with ``EXTENSIONS = {"crawler.extensions.JobStateExtension": 500}``
(on in `crawler.settings`); it needs a job id (spider argument ``job_id`` or
``CRAWLGRAPH_JOB_ID``) and ``CRAWLGRAPH_DATABASE_URL``, and turns itself off
without them; ``CRAWLGRAPH_REDIS_URL`` is where it looks at the job's frontier.
``CRAWLGRAPH_STATS_INTERVAL`` (seconds, default 5) sets how often live stats
are written.

When a worker opens, the job becomes ``running``. If the job has ended
already (finished, failed or cancelled: scrapyd started this process late, or
the API stopped the job meanwhile), the worker closes at once instead, with
the reason ``job_ended`` (`crawler.frontier.ENDED_REASON`): nothing fetched,
the job's row left as it is. Every interval the worker's stats (pages, items,
errors, bytes, pages/s, queue length, leases in flight, rows stored, dead
letters) are merged into ``jobs.stats``: under ``workers.<worker id>`` and
summed at the top level. When a worker closes:

- reason ``finished``: if no other worker is alive and the frontier holds no
  queued or leased request, the job is ``finished`` and its frontier is ended
  (`JobFrontier.end`); otherwise the other workers finish it;
- ``max_pages`` (or a Scrapy ``closespider_*`` limit): the budget is spent; the
  last worker to stop marks the job ``finished`` and ends its frontier;
- ``paused``: the job is ``paused`` (its frontier stays);
- ``cancelled``: the job is ``cancelled``;
- ``shutdown`` (a signal): a job the API cancelled stays ``cancelled``; any
  other (scrapyd or the machine stopped the process) is ``failed``: the crawl
  did not finish, and its unfinished requests are back in the frontier;
- ``job_ended``: the job had ended before this worker crawled (seen here, or
  by the frontier, which hands out nothing of an ended job): nothing is written;
- anything else: the job is ``failed`` with the reason as its error.

Whether a worker is the last is decided in Redis in the same step that ends
the frontier, so a worker starting meanwhile either counts as live (and
finishes the job itself) or finds the job ended. A job the API has already
cancelled stays cancelled. Database writes run in a thread, never on the
reactor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any, Final

import psycopg
import redis
from scrapy import signals
from scrapy.exceptions import CloseSpider, NotConfigured

from core.migrate import pending
from crawler.failures import parse as parse_failure
from crawler.frontier.queue import ENDED_REASON, JobFrontier
from crawler.redisclient import client_for

logger = logging.getLogger(__name__)

# The job's status after this worker opened: 'running', or the status of a job that
# has ended (left as it is); None if there is no such job.
MARK_RUNNING: Final = """
WITH marked AS (
    UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, now()),
           updated_at = now()
    WHERE id = %(job_id)s AND status IN ('pending', 'running', 'paused')
    RETURNING status
)
SELECT COALESCE((SELECT status FROM marked), (SELECT status FROM jobs WHERE id = %(job_id)s))
"""
ENDED_STATUSES: Final = frozenset({"finished", "failed", "cancelled"})
LOCK_STATS: Final = "SELECT stats FROM jobs WHERE id = %s FOR UPDATE"
WRITE_STATS: Final = "UPDATE jobs SET stats = %s, updated_at = now() WHERE id = %s"
FINISH: Final = """
UPDATE jobs SET status = %(status)s, close_reason = %(reason)s, error = %(error)s,
       finished_at = CASE WHEN %(status)s IN ('finished', 'failed', 'cancelled')
                          THEN GREATEST(now(), started_at) END,
       updated_at = now()
WHERE id = %(job_id)s AND status NOT IN ('cancelled', 'finished', 'failed')
"""
# Stats summed over workers; the others are the latest worker's view.
COUNTERS: Final = ("pages", "items", "errors", "bytes", "pages_per_s", "rows_stored",
                   "dead_letters", "leases_in_flight", "offsite")
# Whether a job that is about to finish stored a page that answered (2xx or 3xx),
# and if not, the most frequent failure: (reason, count, HTTP status or 0).
NOTHING_FETCHED: Final = """
SELECT NOT EXISTS (SELECT 1 FROM pages WHERE job_id = %(job)s AND status BETWEEN 200 AND 399),
       (SELECT array[reason, n::text] FROM (
            SELECT split_part(error, ' (', 1) AS reason, count(*) AS n FROM pages
            WHERE job_id = %(job)s AND status = 0 AND error IS NOT NULL
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1) AS failed),
       (SELECT array[host, status::text, n::text] FROM (
            SELECT substring(url from '^https?://([^/:?#]+)') AS host, status, count(*) AS n
            FROM pages WHERE job_id = %(job)s AND status >= 400
            GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 1) AS http),
       (SELECT array[host, n::text] FROM (
            SELECT host, count(*) AS n FROM robots_decisions WHERE job_id = %(job)s
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1) AS robots)
"""
# "shutdown" is a signal (SIGTERM/SIGINT): the API's cancel, which has marked the job
# cancelled already (FINISH leaves it so), or scrapyd or the machine stopping:
# then the crawl did not finish and the job fails; its requests stay queued.
TERMINAL_REASONS: Final = {"cancelled": "cancelled", "paused": "paused"}
# The crawl stopped because its budget was spent: the job is finished once its
# last worker stops, whatever is left in the frontier.
BUDGET_REASONS: Final = frozenset({"max_pages", "closespider_pagecount", "closespider_itemcount",
                                   "closespider_timeout"})


class JobStateExtension:
    """Writes a job's state and live stats to PostgreSQL; see the module docstring."""

    def __init__(self, crawler: Any, database_url: str, redis_url: str | None, job_id: str,
                 interval: float) -> None:
        self.crawler = crawler
        self.database_url = database_url
        self.redis_url = redis_url
        self.job_id = job_id
        self.interval = interval
        self.worker = f"{os.getpid()}"
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> JobStateExtension:
        settings = crawler.settings
        job_id = getattr(crawler.spider, "job_id", None) or settings.get("CRAWLGRAPH_JOB_ID")
        if not job_id:
            raise NotConfigured("JobStateExtension needs a job_id spider argument")
        url = settings.get("CRAWLGRAPH_DATABASE_URL")
        if not url:
            raise NotConfigured("JobStateExtension needs CRAWLGRAPH_DATABASE_URL or DATABASE_URL")
        redis_url = settings.get("CRAWLGRAPH_REDIS_URL") or None
        ext = cls(crawler, url, redis_url, str(job_id),
                  settings.getfloat("CRAWLGRAPH_STATS_INTERVAL", 5.0))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    async def spider_opened(self) -> None:
        self.worker = getattr(self.crawler.engine.scheduler, "worker", self.worker)
        self._started = time.monotonic()
        status = await asyncio.to_thread(self._mark_running)
        if status in ENDED_STATUSES:
            logger.warning("jobstate: job %s is %s already; this worker closes without "
                           "crawling", self.job_id, status)
            raise CloseSpider(ENDED_REASON)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def spider_closed(self, reason: str) -> None:
        if self._task is not None:
            self._task.cancel()
        if reason == ENDED_REASON:
            logger.info("jobstate: worker closed (%s), job %s left as it is", reason,
                        self.job_id)
            return
        try:
            await self._close(reason)
        except (psycopg.Error, redis.RedisError) as exc:
            logger.error("jobstate: could not record the end of job %s: %s", self.job_id, exc)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self._write_stats, self._snapshot())
            except psycopg.Error as exc:
                # Live stats are best effort: the next interval tries again.
                logger.warning("jobstate: could not write live stats: %s", exc)

    def _snapshot(self) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats()
        pages = int(stats.get("response_received_count", 0))
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return {
            "pages": pages,
            "items": int(stats.get("item_scraped_count", 0)),
            "errors": int(stats.get("log_count/ERROR", 0))
            + int(stats.get("spider_exceptions/count", 0)),
            "bytes": int(stats.get("downloader/response_bytes", 0)),
            "pages_per_s": round(pages / elapsed, 2),
            "rows_stored": int(stats.get("storage/rows", 0)),
            "dead_letters": int(stats.get("storage/dead_letters", 0)),
            "queue_length": int(stats.get("frontier/queued", 0)),
            "leases_in_flight": int(stats.get("frontier/inflight", 0)),
            "leased_total": int(stats.get("frontier/leased_total", 0)),
            "offsite": int(stats.get("crawlgraph/offsite", 0)),
            "updated": time.time(),
        }

    def _mark_running(self) -> str | None:
        """Mark the job running unless it has ended; return its status.

        A database whose schema is behind this code (the code was updated, the
        migrations not applied) would send every row to the dead letters: the
        job fails at once instead, saying what to run.
        """
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            missing = pending(conn)
            if missing:
                error = (f"the database schema is behind this crawler ({', '.join(missing)} "
                         "not applied): run `crawlgraph db upgrade` (or `crawlgraph up`), "
                         "then submit the job again")
                logger.error("jobstate: job %s: %s", self.job_id, error)
                conn.execute(FINISH, {"status": "failed", "reason": "schema_outdated",
                                      "error": error, "job_id": self.job_id})
                return "failed"
            row = conn.execute(MARK_RUNNING, {"job_id": self.job_id}).fetchone()
        return row[0] if row else None

    def _write_stats(self, snapshot: dict[str, Any],
                     conn: psycopg.Connection | None = None) -> None:
        if conn is None:
            with psycopg.connect(self.database_url, connect_timeout=5) as own:
                return self._write_stats(snapshot, own)
        with conn.transaction():
            row = conn.execute(LOCK_STATS, (self.job_id,)).fetchone()
            if row is None:
                return None
            merged = dict(row[0] or {})
            workers = dict(merged.get("workers") or {})
            workers[self.worker] = snapshot
            merged["workers"] = workers
            for key in COUNTERS:
                merged[key] = sum(w.get(key, 0) for w in workers.values())
            merged["queue_length"] = snapshot["queue_length"]
            conn.execute(WRITE_STATS, (json.dumps(merged), self.job_id))
        return None

    async def _close(self, reason: str) -> None:
        snapshot = self._snapshot()
        snapshot["leases_in_flight"] = 0
        snapshot["pages_per_s"] = 0
        status, error = TERMINAL_REASONS.get(reason), None
        if reason == "finished":
            status = "finished" if await self._end_frontier(require_empty=True) else None
        elif reason in BUDGET_REASONS:
            status = "finished" if await self._end_frontier(require_empty=False) else None
        elif status is None:
            status, error = "failed", f"crawler closed: {reason}"
        await asyncio.to_thread(self._record_end, snapshot, status, reason, error)
        logger.info("jobstate: worker closed (%s), job %s", reason, status or "still running")

    def _record_end(self, snapshot: dict[str, Any], status: str | None, reason: str,
                    error: str | None) -> None:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            self._write_stats(snapshot, conn)
            if status == "finished":
                why = _nothing_fetched(conn.execute(NOTHING_FETCHED,
                                                    {"job": self.job_id}).fetchone())
                if why is not None:
                    status, error = "failed", why
                    logger.warning("jobstate: job %s stored no page that answered: %s",
                                   self.job_id, why)
            if status is not None:
                with conn.transaction():
                    conn.execute(FINISH, {"status": status, "reason": reason, "error": error,
                                          "job_id": self.job_id})

    async def _end_frontier(self, *, require_empty: bool) -> bool:
        """End the job's frontier if this was its last worker; return whether it ended.

        `require_empty`: only if nothing is queued or leased either (a crawl that
        ran out of work, not one whose budget is spent).
        """
        if not self.redis_url:
            return True
        client = client_for(self.redis_url)
        try:
            return await JobFrontier(client, self.job_id).end(require_empty=require_empty)
        finally:
            await client.aclose()


def _nothing_fetched(row: tuple | None) -> str | None:
    """Why a job that stored no answering page failed; None if it stored one."""
    if row is None or not row[0]:
        return None
    failure, http, robots = row[1], row[2], row[3]
    if failure:
        reason, count = failure
        parsed = parse_failure(reason)
        said = parsed[1] if parsed else reason
        return f"no page could be fetched: {said} ({_urls(count)})"
    if http:
        host, code, count = http
        return f"no page could be fetched: {host} answered HTTP {code} ({_urls(count)})"
    if robots:
        host, count = robots
        return (f"no page could be fetched: robots.txt of {host} disallows the crawl "
                f"({_urls(count)})")
    return ("no page could be fetched: no start URL was crawled (refused by the "
            "private-address guard, out of scope, or none given); see the crawler's log")


def _urls(count: str | int) -> str:
    return f"{count} URL{'s' * (int(count) != 1)}"
