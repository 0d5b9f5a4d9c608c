"""Benchmark: a recrawl against the first crawl of the same site, bytes and seconds.

Serves a generated site (default 5,000 pages) from the local mock server with
`conditional=True` (ETag / Last-Modified, 304 to a matching conditional
request), crawls it with the `site` spider (every middleware on, the
frontier and the storage pipeline of a private PostgreSQL and Redis), moves
the site to its next version (`tests.siteversions`: 1 % of the pages
removed, 4 % revised, a few added; the pages that linked to a removed page
change too: some 10 % in all) and crawls it again with `recrawl_of` the
first job. Figures: response bytes (Scrapy's `downloader/response_bytes`:
status line, headers and body), body bytes the server sent (its answer
log), and seconds (`elapsed_time_seconds`) of the recrawl against the first
crawl. Twice: with pages of 20,000 bytes (`--page-bytes`; real HTML pages
weigh tens of kilobytes), the figures with the target, and with the
generator's own pages of about 600 bytes (`…_small_pages`), where a 304's
headers weigh nearly half of what the page did.
Writes bench/results/recrawl.json. Target: `ratio_bytes_recrawl_vs_first`
under 0.2.

    .venv/bin/python bench/recrawl.py [--pages N] [--page-bytes N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import make_job, print_table, start_stack, write_results  # noqa: E402


def crawl(db: str, rd: str, start_url: str, recrawl_of: str | None = None) -> tuple[str, dict]:
    from tests.crawlrun import run_crawl

    job = make_job(db, "site")
    args = {"job_id": job, "start_urls": json.dumps([start_url])}
    if recrawl_of is not None:
        args["recrawl_of"] = recrawl_of
    result = run_crawl("crawler.spiders.site.SiteSpider", args,
                       {"CRAWLGRAPH_DATABASE_URL": db, "CRAWLGRAPH_REDIS_URL": rd,
                        "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True, "LOG_LEVEL": "WARNING"},
                       stack=True, timeout=1800)
    if result.reason != "finished":
        raise SystemExit(f"crawl failed ({result.reason}):\n{result.log[-3000:]}")
    return job, result.stats


def measure(db: str, rd: str, pages: int, page_bytes: int) -> dict:
    """Crawl a site, move it to its next version, recrawl it: the figures of both crawls."""
    from tests.mockserver import MockServer
    from tests.siteversions import truth

    server = MockServer(pages=pages, seed=3, links_per_page=5, conditional=True,
                        page_bytes=page_bytes).start()
    # 1 % of the pages removed (the ~5 % that link to them change) and 4 % revised:
    # some 10 % of the pages change in all (printed).
    server.configure(version_changes={"removed": 0.01, "revised": 0.04})
    try:
        old = server.site  # version 0: the changes apply from version 1
        first, first_stats = crawl(db, rd, server.start_url)
        server.configure(version=1)
        kinds = Counter(truth(old, server.site, server.origin).values())
        first_answers = server.responses()
        second, second_stats = crawl(db, rd, server.start_url, recrawl_of=first)
        second_answers = server.responses()[len(first_answers):]
        with psycopg.connect(db) as conn:
            marks = dict(conn.execute("SELECT change, count(*) FROM pages WHERE job_id = %s "
                                      "GROUP BY 1", (second,)).fetchall())
    finally:
        server.close()
    first_body = sum(a["bytes"] for a in first_answers)
    second_body = sum(a["bytes"] for a in second_answers)
    return {
        "page_bytes": page_bytes,  # 0: the generator's own pages
        "first_bytes": first_stats["downloader/response_bytes"],
        "recrawl_bytes": second_stats["downloader/response_bytes"],
        "first_body_bytes": first_body, "recrawl_body_bytes": second_body,
        "first_seconds": first_stats["elapsed_time_seconds"],
        "recrawl_seconds": second_stats["elapsed_time_seconds"],
        "site_changes": dict(kinds),
        "recrawl_answers": {str(k): v for k, v in
                            Counter(a["status"] for a in second_answers).items()},
        "pages_marked": {str(k): v for k, v in marks.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--page-bytes", type=int, default=20_000,
                        help="the size of a page of the main run (default 20,000)")
    args = parser.parse_args()
    stack, home = start_stack({"postgres", "redis"})
    try:
        db, rd = stack.settings.database_url, stack.settings.redis_url
        runs = [measure(db, rd, args.pages, args.page_bytes), measure(db, rd, args.pages, 0)]
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    rows, results = [], []
    for run, suffix in zip(runs, ("", "_small_pages"), strict=True):
        ratio_bytes = run["recrawl_bytes"] / run["first_bytes"]
        ratio_body = run["recrawl_body_bytes"] / run["first_body_bytes"]
        ratio_s = run["recrawl_seconds"] / run["first_seconds"]
        label = (f"pages of {run['page_bytes']:,} bytes" if run["page_bytes"]
                 else "the generator's pages, ~600 bytes")
        rows += [
            (f"response bytes, recrawl ({label})", f"{run['recrawl_bytes']:,}",
             f"{run['first_bytes']:,} first crawl", f"{ratio_bytes:.3f}",
             "< 0.2" if not suffix else ""),
            (f"body bytes sent, recrawl ({label})", f"{run['recrawl_body_bytes']:,}",
             f"{run['first_body_bytes']:,} first crawl", f"{ratio_body:.3f}", ""),
            (f"seconds, recrawl ({label})", f"{run['recrawl_seconds']:.1f}",
             f"{run['first_seconds']:.1f} first crawl", f"{ratio_s:.2f}", ""),
        ]
        print(f"{label}: site changes {run['site_changes']}; recrawl answers by status "
              f"{run['recrawl_answers']}; pages marked {run['pages_marked']}")
        results += [
            {"name": f"ratio_bytes_recrawl_vs_first{suffix}", "value": round(ratio_bytes, 4),
             **({"target": "< 0.2"} if not suffix else {})},
            {"name": f"ratio_body_bytes_recrawl_vs_first{suffix}", "value": round(ratio_body, 4)},
            {"name": f"ratio_seconds_recrawl_vs_first{suffix}", "value": round(ratio_s, 3)},
        ]
    print_table(rows)
    write_results("recrawl", results, pages=args.pages, runs=runs)


if __name__ == "__main__":
    main()
