"""A job's summary: pages by status class, errors by cause, robots.txt, events, the cap.

Read from what the crawl stored (the `pages`, `robots_decisions` and
`crawl_events` rows and the job's stats), so that the CLI, `make crawl` and
the API say the same: how many pages answered 2xx … 5xx or failed, the most
frequent errors with their cause and an example URL, the URLs robots.txt kept
the crawl from, and — when the page cap ended the crawl — that the graph is
cut and the command that lifts the cap.
"""

from __future__ import annotations

import shlex
from http import HTTPStatus
from typing import Any

from psycopg_pool import AsyncConnectionPool

from crawler.failures import CAUSES
from jobapi.schemas import CapNotice, ErrorCount, EventCount, JobSummary, RobotsCount
from jobapi.sql import QUERIES

MAX_ERROR_KINDS = 10
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "failed")
_CLASSES = QUERIES["summary_status_classes"]
_ERRORS = QUERIES["summary_errors"]
_ROBOTS = QUERIES["summary_robots"]
_EVENTS = QUERIES["summary_events"]


def meaning(cause: str) -> str:
    """What a cause means: `the name does not resolve`, `HTTP 404 Not Found` ..."""
    if cause.startswith("http_") and cause[5:].isdigit():
        code = int(cause[5:])
        try:
            return f"HTTP {code} {HTTPStatus(code).phrase}"
        except ValueError:
            return f"HTTP {code}"
    return CAUSES.get(cause, CAUSES["error"])


def _cause(raw: str | None) -> str:
    # Errors stored before causes were recorded have free text before the colon.
    if raw and (raw in CAUSES or raw.startswith("http_")):
        return raw
    return "error"


def cap_notice(params: dict[str, Any], close_reason: str | None) -> CapNotice | None:
    """The notice for a crawl the page cap ended, with the command that crawls ten times more."""
    cap = params.get("max_pages")
    if close_reason != "max_pages" or not cap:
        return None
    urls = " ".join(shlex.quote(u) for u in params.get("start_urls", [])[:3]) or "URL"
    more = int(cap) * 10
    return CapNotice(
        max_pages=int(cap),
        message=(f"The crawl stopped at its cap of {int(cap):,} pages: pages it had found "
                 "but not fetched are missing, so the graph is cut."),
        command=f"crawlgraph crawl-to-graph {urls} --max-pages {more}  "
                f"(or: make crawl URL=... CRAWL_ARGS=\"--max-pages {more}\")",
    )


async def job_summary(pool: AsyncConnectionPool, job: Any) -> JobSummary:
    """The summary of `job` (a `jobapi.schemas.Job` the caller may see)."""
    async with pool.connection() as conn:
        classes = await (await conn.execute(_CLASSES, (job.id,))).fetchall()
        errors = await (await conn.execute(_ERRORS, (job.id, MAX_ERROR_KINDS))).fetchall()
        robots = await (await conn.execute(_ROBOTS, (job.id,))).fetchall()
        events = await (await conn.execute(_EVENTS, (job.id,))).fetchall()
    by_class = dict.fromkeys(STATUS_CLASSES, 0)
    for name, count in classes:
        by_class[name] = by_class.get(name, 0) + int(count)
    error_counts: dict[str, ErrorCount] = {}
    for raw, count, url, error in errors:
        cause = _cause(raw)
        if cause in error_counts:  # free-text errors fold into `error`
            error_counts[cause].count += int(count)
            continue
        error_counts[cause] = ErrorCount(cause=cause, meaning=meaning(cause), count=int(count),
                                         example_url=url, example_error=error)
    stats = job.stats if isinstance(job.stats, dict) else {}
    return JobSummary(
        job_id=job.id, status=job.status, close_reason=job.close_reason, error=job.error,
        pages=sum(by_class.values()), pages_by_status=by_class,
        errors=sorted(error_counts.values(), key=lambda e: (-e.count, e.cause)),
        robots=[RobotsCount(decision=d, robots_status=s, count=int(n), example_url=u)
                for d, s, n, u in robots],
        events=[EventCount(kind=k, count=int(n), example_url=u, detail=d or "")
                for k, n, u, d in events],
        offsite_links=int(stats.get("offsite", 0) or 0),
        cap=cap_notice(job.params if isinstance(job.params, dict) else {}, job.close_reason),
    )
