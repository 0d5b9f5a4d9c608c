"""A job's summary: pages by status class, errors by cause, robots.txt, events, the cap, sites.

Read from what the crawl stored (the `pages`, `robots_decisions` and
`crawl_events` rows and the job's stats), so that the CLI, `make crawl` and
the API say the same: how many pages answered 2xx … 5xx or failed, the most
frequent errors with their cause and an example URL, the URLs robots.txt kept
the crawl from, and — when the page cap ended the crawl — that the graph is
cut and the command that lifts the cap.

The per-site table gives the same figures for each site, a site being what
the job's scope groups (`site_key`): with `scope: site` (and `prefix`) a
name with and without `www.` (`crawler.scope.site_names`), with `domain`
the registered domain, with `host` the host and port. A page belongs to the
site of its final URL. Its queries are in `jobapi/sql/summary.sql`.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from psycopg_pool import AsyncConnectionPool

from crawler.failures import CAUSES
from crawler.scope import domain_of, site_names
from jobapi.schemas import (
    CapNotice,
    ErrorCount,
    EventCount,
    JobSummary,
    RobotsCount,
    SiteSummary,
)
from jobapi.sql import QUERIES

MAX_ERROR_KINDS = 10
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "failed")
_CLASSES = QUERIES["summary_status_classes"]
_ERRORS = QUERIES["summary_errors"]
_CHANGES = QUERIES["summary_changes"]
_ROBOTS = QUERIES["summary_robots"]
_EVENTS = QUERIES["summary_events"]
_REDIRECTS = QUERIES["summary_redirects"]
_HOST_CLASSES = QUERIES["summary_host_classes"]
_HOST_ROBOTS = QUERIES["summary_host_robots"]
ERROR_CLASSES = ("4xx", "5xx", "failed")
# What robots.txt did, the worst first (`jobapi.schemas.SiteSummary`).
_ROBOTS_WORST = ("unreachable", "error", "unavailable", "disallowed")
_ROBOTS_STATE = {"unreachable": "unreachable", "error": "error", "unavailable": "error",
                 "disallowed": "disallowed"}


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


def site_key(netloc: str, scope: str) -> str:
    """The site a host (`name` or `name:port`) belongs to under a job's scope."""
    try:
        parts = urlsplit("//" + netloc)
        host, port = parts.hostname or netloc, parts.port
    except ValueError:  # a port that is no number: the netloc as it is
        return netloc
    if scope == "host":
        return netloc
    name = domain_of(host) if scope == "domain" else site_names(host)[0]
    label = f"[{name}]" if ":" in name else name
    return f"{label}:{port}" if port and scope != "domain" else label


def site_table(host_classes: list[tuple[str, str, int]],
               host_robots: list[tuple[str, str, int]], scope: str,
               obey_robots: bool) -> list[SiteSummary]:
    """Per site: pages by status class, errors, robots.txt; the most pages first."""
    classes: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUS_CLASSES, 0))
    for host, name, count in host_classes:
        by_class = classes[site_key(host or "", scope)]
        by_class[name] = by_class.get(name, 0) + int(count)
    robots: dict[str, dict[str, int]] = defaultdict(dict)
    for host, what, count in host_robots:
        seen = robots[site_key(host, scope)]
        seen[what] = seen.get(what, 0) + int(count)
    rows = []
    for site in classes.keys() | robots.keys():
        by_class = classes[site]
        seen = robots.get(site, {})
        worst = next((w for w in _ROBOTS_WORST if seen.get(w)), None)
        state = ("not_obeyed" if not obey_robots
                 else _ROBOTS_STATE[worst] if worst else "allowed")
        rows.append(SiteSummary(
            site=site, pages=sum(by_class.values()), pages_by_status=by_class,
            errors=sum(by_class.get(c, 0) for c in ERROR_CLASSES), robots=state,
            robots_kept_out=seen.get("disallowed", 0) + seen.get("unavailable", 0)))
    return sorted(rows, key=lambda r: (-r.pages, r.site))


async def job_summary(pool: AsyncConnectionPool, job: Any,
                      sites: int | None = None) -> JobSummary:
    """The summary of `job` (a `jobapi.schemas.Job` the caller may see).

    `sites`: at most this many rows of the per-site table (None: all; 0: no table).
    """
    params = job.params if isinstance(job.params, dict) else {}
    async with pool.connection() as conn:
        errors = await (await conn.execute(_ERRORS, (job.id, MAX_ERROR_KINDS))).fetchall()
        robots = await (await conn.execute(_ROBOTS, (job.id,))).fetchall()
        events = await (await conn.execute(_EVENTS, (job.id,))).fetchall()
        (redirects,) = await (await conn.execute(_REDIRECTS, (job.id,))).fetchone()
        changes = None
        if params.get("recrawl_of"):
            rows = await (await conn.execute(_CHANGES, {"job": job.id,
                                                        "previous": params["recrawl_of"]}))\
                .fetchall()
            changes = {**dict.fromkeys(("new", "changed", "unchanged", "gone"), 0),
                       **{kind: int(n) for kind, n in rows}}
        table: list[SiteSummary] | None = None
        if sites == 0:
            classes = await (await conn.execute(_CLASSES, (job.id,))).fetchall()
        else:  # the job's classes are the sum of its hosts': one pass over its pages
            host_classes = await (await conn.execute(_HOST_CLASSES, (job.id,))).fetchall()
            host_robots = await (await conn.execute(_HOST_ROBOTS, {"job": job.id})).fetchall()
            table = site_table(host_classes, host_robots, str(params.get("scope") or "site"),
                               bool(params.get("obey_robots", True)))
            classes = [(name, count) for _, name, count in host_classes]
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
        offsite_links=int(stats.get("offsite", 0) or 0), redirects=int(redirects),
        changes=changes,
        cap=cap_notice(params, job.close_reason),
        sites=(table or [])[:sites], site_count=None if table is None else len(table),
    )
