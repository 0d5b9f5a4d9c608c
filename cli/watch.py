"""Watching a job: a progress line until it ends, then its summary.

The progress line's `pages` and `errors` are the summary's figures (pages
stored, by `GET /api/v1/jobs/{id}/summary?sites=0`; errors are the stored
pages that answered 4xx or 5xx or failed), so the line and the summary after
it agree; the rate is pages stored per second while watching. The exit status
is 0 when the job finished and 1 with the reason otherwise. Ctrl-C stops
watching (the job goes on) and says how to cancel it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from cli.client import ApiClient
from cli.format import duration, queue_length, stat, status_text
from cli.summary import ERROR_CLASSES, render

TERMINAL = {"finished", "failed", "cancelled"}
POLL_SECONDS = 1.0


def watch(client: ApiClient, job_id: str, *, max_pages: int | None = None,
          out: Any = None, command: str = "crawl") -> int:
    """Show the job's progress until it ends; 0 when it finished, 1 otherwise.

    `command` is the crawlgraph command that started the job: the summary's
    notice of a page cap suggests it again, with a larger cap.
    """
    out = out or sys.stdout
    tty = out.isatty()
    started = time.monotonic()
    first: tuple[float, int] | None = None
    last_line = ""
    last_print = 0.0
    try:
        while True:
            job = client.call("GET", f"/api/v1/jobs/{job_id}")
            stored = client.call("GET", f"/api/v1/jobs/{job_id}/summary", params={"sites": 0})
            now = time.monotonic()
            first = first or (now - started, int(stored.get("pages", 0)))
            line = _progress(job, stored, now - started, max_pages, first)
            if tty:
                out.write("\r" + line.ljust(len(last_line)))
                out.flush()
            elif line != last_line and now - last_print >= 1.0 or job["status"] in TERMINAL:
                print(line, file=out)
                last_print = now
            last_line = line
            if job["status"] in TERMINAL:
                break
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        if tty:
            out.write("\n")
        print(f"stopped watching; the job goes on. Cancel it with: crawlgraph cancel {job_id}",
              file=out)
        return 130
    if tty:
        out.write("\n")
    print(_summary(job, time.monotonic() - started), file=out)
    summary = client.call("GET", f"/api/v1/jobs/{job_id}/summary")
    print("\n".join(render(summary, command, job.get("params") or {})), file=out)
    return 0 if job["status"] == "finished" else 1


def _progress(job: dict[str, Any], stored: dict[str, Any], elapsed: float,
              max_pages: int | None, first: tuple[float, int] | None = None) -> str:
    """Pages stored and their rate; a bar and a percentage only once the cap is near.

    A bar against a far cap (100,000 pages of a site of 300) would read 0% to
    the end: the figure that means something then is the pages and the rate.
    `first` is (when, pages) of the first reading: the rate counts from there.
    """
    pages = int(stored.get("pages", 0))
    classes = stored.get("pages_by_status") or {}
    errors = sum(int(classes.get(c, 0)) for c in ERROR_CLASSES)
    since, base = first if first is not None else (0.0, 0)
    span = elapsed - since
    rate = (pages - base) / span if span > 0 else 0.0
    bar = cap = ""
    if max_pages and pages >= max_pages / 10:
        done = min(1.0, pages / max_pages)
        bar = "[" + "#" * int(done * 20) + "." * (20 - int(done * 20)) + f"] {done:4.0%} "
    elif max_pages:
        cap = f" of at most {max_pages:,}"
    return (f"{bar}{job['status']:<9} pages {pages:,}{cap}  {rate:.1f} pages/s  errors "
            f"{errors:,}  queue {queue_length(job)}  elapsed {duration(elapsed)}")


def _summary(job: dict[str, Any], elapsed: float) -> str:
    lines = [
        f"job {job['id']} {status_text(job)}",
        f"  responses {int(stat(job, 'pages'))} (robots.txt included), records stored "
        f"{int(stat(job, 'rows_stored'))} (pages, links and redirects), "
        f"elapsed {duration(elapsed)}",
    ]
    if job.get("error"):
        lines.append(f"  reason: {job['error']}")
    if job["status"] == "finished":
        lines.append(f"  pages: crawlgraph pages {job['id']}")
    return "\n".join(lines)
