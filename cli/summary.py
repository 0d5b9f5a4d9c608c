"""A job's summary as the command line prints it (`GET /api/v1/jobs/{id}/summary`).

    pages    1,204: 2xx 1,180 · 3xx 0 · 4xx 20 · 5xx 0 · failed 4
    errors   by cause, most frequent first:
               20  HTTP 404 Not Found          e.g. https://example.org/old
                4  the name does not resolve   e.g. https://gone.example.net/  (gone.example.net)
    robots   12 URLs disallowed by robots.txt (status 200), e.g. https://example.org/admin/
    cut      The crawl stopped at its cap of 1,000 pages: ... the graph is cut.
             crawl more: crawlgraph crawl https://example.org/ --max-pages 10000
    sites    2, the most pages first:
             site               pages    2xx  errors  robots
             example.org        1,200  1,180      20  disallowed (12 URLs kept out)
             gone.example.net       4      0       4  unreachable

A job of many sites shows its `TOP_SITES` biggest and says how many more
there are; `crawlgraph summary JOB --json` prints the whole summary, every
site included. Everything in it comes from crawled pages: it is printed as
text, and control characters are replaced so that a hostile URL cannot
rewrite the terminal.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from typing import Any

from cli.client import client_for
from cli.format import status_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_URL = 100
MAX_SITE = 60
TOP_SITES = 10
#: The status classes that count as errors (as `errors` of the API's per-site table).
ERROR_CLASSES = ("4xx", "5xx", "failed")


def _safe(text: Any, limit: int = MAX_URL) -> str:
    value = _CONTROL.sub("?", str(text))
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _host_of(error: str | None) -> str:
    # A stored error reads `cause: host: meaning (detail)`.
    parts = (error or "").split(": ", 2)
    return parts[1] if len(parts) == 3 else ""


def site_table(summary: dict[str, Any], top: int = TOP_SITES) -> list[str]:
    """The per-site table (the `top` first rows), for a job of two sites or more."""
    sites = summary.get("sites") or []
    count = summary.get("site_count") or len(sites)
    if count < 2:
        return []
    rows = [(_safe(s["site"], MAX_SITE), f"{s['pages']:,}",
             f"{(s.get('pages_by_status') or {}).get('2xx', 0):,}", f"{s['errors']:,}",
             _safe(s["robots"], 20) + (f" ({s['robots_kept_out']:,} URLs kept out)"
                                       if s.get("robots_kept_out") else ""))
            for s in sites[:top]]
    header = ("site", "pages", "2xx", "errors", "robots")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [f"  sites    {count:,}, the most pages first:"]
    for row in [header, *rows]:
        lines.append(f"           {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  "
                     f"{row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}  {row[4]}")
    if count > len(rows):
        job = summary.get("job_id", "JOB")
        lines.append(f"           … and {count - len(rows):,} more (every site: crawlgraph "
                     f"summary {job} --json)")
    return lines


def rerun(command: str, params: dict[str, Any], max_pages: int) -> str:
    """The command line that crawls the job's start URLs again with a larger cap."""
    urls = [str(u) for u in params.get("start_urls") or []]
    shown = " ".join(shlex.quote(_safe(u, 400)) for u in urls[:3]) + (" …" if len(urls) > 3 else "")
    line = f"crawlgraph {command} {shown or 'URL'} --max-pages {max_pages}"
    if command == "crawl-to-graph":
        line += f"  (or: make crawl URL=... CRAWL_ARGS=\"--max-pages {max_pages}\")"
    return line


def render(summary: dict[str, Any], command: str = "crawl",
           params: dict[str, Any] | None = None) -> list[str]:
    """The summary's lines, indented under the job's line.

    `command` is the crawlgraph command the user ran (`crawl`, `crawl-to-graph`)
    and `params` the job's parameters: the cap notice suggests that command again.
    """
    classes = summary.get("pages_by_status") or {}
    lines = [f"  pages    {summary.get('pages', 0):,}: " + " · ".join(
        f"{name} {classes.get(name, 0):,}" for name in ("2xx", "3xx", "4xx", "5xx", "failed"))]
    if summary.get("redirects"):
        n = summary["redirects"]
        lines.append(f"  redirects {n:,} followed: each page is counted once, where it landed "
                     "(the graphs fold them)")
    changes = summary.get("changes")
    if changes:
        against = (params or {}).get("recrawl_of")
        lines.append("  changes  " + (f"against job {against}: " if against else "") + " · ".join(
            f"{kind} {changes.get(kind, 0):,}" for kind in ("new", "changed", "unchanged",
                                                            "gone")))
    errors = summary.get("errors") or []
    if errors:
        lines.append("  errors   by cause, most frequent first:")
        width = max(len(e["meaning"]) for e in errors)
        for e in errors:
            host = _host_of(e.get("example_error")) if e["cause"] != "error" else ""
            lines.append(f"           {e['count']:>6,}  {_safe(e['meaning']):<{width}}  "
                         f"e.g. {_safe(e['example_url'])}" + (f"  ({_safe(host, 60)})"
                                                              if host else ""))
    for r in summary.get("robots") or []:
        status = f" (status {r['robots_status']})" if r.get("robots_status") is not None else ""
        lines.append(f"  robots   {r['count']:,} URLs {r['decision']} by robots.txt{status}, "
                     f"e.g. {_safe(r['example_url'])}")
    for e in summary.get("events") or []:
        example = f", e.g. {_safe(e['example_url'])}" if e.get("example_url") else ""
        lines.append(f"  events   {e['count']:,} {_safe(e['kind'], 40)}{example}")
    if summary.get("offsite_links"):
        n = summary["offsite_links"]
        lines.append(f"  offsite  {n:,} link{'s' * (n != 1)} left the crawl's scope "
                     "(stored, not followed)")
    cap = summary.get("cap")
    if cap:
        lines.append(f"  cut      {cap['message']}")
        more = rerun(command, params or {}, int(cap["max_pages"]) * 10)
        lines.append(f"           crawl more: {more}")
    lines += site_table(summary)
    return lines


def cmd_summary(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        summary = client.call("GET", f"/api/v1/jobs/{args.job}/summary")
        if args.json:
            print(json.dumps(summary, indent=2))
            return 0
        job = client.call("GET", f"/api/v1/jobs/{args.job}")
    finally:
        client.close()
    print(f"job {job['id']} {status_text(job)}")
    print("\n".join(render(summary, params=job.get("params") or {})))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("summary", help="what a job stored: pages, errors, robots.txt, "
                                "sites")
    cmd.add_argument("job", help="the job id")
    cmd.add_argument("--json", action="store_true",
                     help="the whole summary as JSON, every site included")
    cmd.add_argument("--api-url", help="the API (default: the local stack's)")
    cmd.set_defaults(func=cmd_summary)
