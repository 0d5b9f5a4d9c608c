"""Plain-text formatting of the command line: tables, durations, a job's figures."""

from __future__ import annotations

from typing import Any


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
              for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def utc_time(value: str | None) -> str:
    """An API timestamp as `YYYY-MM-DD HH:MM:SS UTC` ("-" for none)."""
    return value[:19].replace("T", " ") + " UTC" if value else "-"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def stat(job: dict[str, Any], name: str) -> float:
    value = (job.get("stats") or {}).get(name, 0)
    return value if isinstance(value, int | float) else 0


def queue_length(job: dict[str, Any]) -> int:
    live = job.get("frontier") or {}
    if live:
        return int(live.get("queued", 0)) + int(live.get("leased", 0))
    return int(stat(job, "queue_length"))


def status_text(job: dict[str, Any]) -> str:
    """A job's status, with why its crawl closed when that says more ("finished (max_pages)")."""
    status, reason = job["status"], job.get("close_reason")
    return f"{status} ({reason})" if reason and reason != status else status
