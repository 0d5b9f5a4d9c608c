"""A job's summary as the command line prints it (`GET /api/v1/jobs/{id}/summary`).

    pages    1,204: 2xx 1,180 · 3xx 0 · 4xx 20 · 5xx 0 · failed 4
    errors   by cause, most frequent first:
               20  HTTP 404 Not Found          e.g. https://example.org/old
                4  the name does not resolve   e.g. https://gone.example.net/  (gone.example.net)
    robots   12 URLs disallowed by robots.txt (status 200), e.g. https://example.org/admin/
    cut      The crawl stopped at its cap of 1,000 pages: ... the graph is cut.
             crawl more: crawlgraph crawl-to-graph https://example.org/ --max-pages 10000

Everything in it comes from crawled pages: it is printed as text, and
control characters are replaced so that a hostile URL cannot rewrite the
terminal.
"""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_URL = 100


def _safe(text: Any, limit: int = MAX_URL) -> str:
    value = _CONTROL.sub("?", str(text))
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _host_of(error: str | None) -> str:
    # A stored error reads `cause: host: meaning (detail)`.
    parts = (error or "").split(": ", 2)
    return parts[1] if len(parts) == 3 else ""


def render(summary: dict[str, Any]) -> list[str]:
    """The summary's lines, indented under the job's line."""
    classes = summary.get("pages_by_status") or {}
    lines = [f"  pages    {summary.get('pages', 0):,}: " + " · ".join(
        f"{name} {classes.get(name, 0):,}" for name in ("2xx", "3xx", "4xx", "5xx", "failed"))]
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
        lines.append(f"           crawl more: {_safe(cap['command'], 400)}")
    return lines
