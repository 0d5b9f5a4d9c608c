"""Benchmark: a recrawl against the first crawl of the same site, bytes and seconds.

Serves a generated site (default 5,000 pages) from the local mock server with
`conditional=True` (ETag / Last-Modified, 304 to a matching conditional
request), crawls it with the `site` spider (every middleware on, the
frontier and the storage pipeline of a private PostgreSQL and Redis), moves
the site to its next version (`tests.siteversions`: 2 % of the pages
removed, 5 % revised, a few added; the pages that linked to a removed page
change too: some 15 % in all) and crawls it again with `recrawl_of` the
first job. Figures: response bytes (Scrapy's `downloader/response_bytes`:
status line, headers and body), body bytes the server sent (its answer
log), and seconds (`elapsed_time_seconds`) of the recrawl against the first
crawl. The generated pages are small (about 600 bytes), so the headers of a
304 weigh more than they would on real pages.
Writes bench/results/recrawl.json. Target: `ratio_bytes_recrawl_vs_first`
under 0.2.

    .venv/bin/python bench/recrawl.py [--pages N]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=5000)
    args = parser.parse_args()
    from tests.mockserver import MockServer
    from tests.siteversions import truth

    stack, home = start_stack({"postgres", "redis"})
    server = MockServer(pages=args.pages, seed=3, links_per_page=5, conditional=True).start()
    # 2 % of the pages removed (the ~10 % that link to them change) and 5 % revised:
    # some 15 % of the pages change in all (printed).
    server.configure(version_changes={"removed": 0.02, "revised": 0.05})
    try:
        db, rd = stack.settings.database_url, stack.settings.redis_url
        old = server.site  # version 0: the changes apply from version 1
        first, first_stats = crawl(db, rd, server.start_url)
        server.configure(version=1)
        kinds = Counter(truth(old, server.site, server.origin).values())
        first_answers = server.responses()
        second, second_stats = crawl(db, rd, server.start_url, recrawl_of=first)
        second_answers = server.responses()[len(first_answers):]
        first_body = sum(a["bytes"] for a in first_answers)
        second_body = sum(a["bytes"] for a in second_answers)
        answers = Counter(a["status"] for a in second_answers)
        with psycopg.connect(db) as conn:
            marks = dict(conn.execute("SELECT change, count(*) FROM pages WHERE job_id = %s "
                                      "GROUP BY 1", (second,)).fetchall())
    finally:
        server.close()
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    first_bytes = first_stats["downloader/response_bytes"]
    second_bytes = second_stats["downloader/response_bytes"]
    first_s, second_s = first_stats["elapsed_time_seconds"], second_stats["elapsed_time_seconds"]
    ratio_bytes, ratio_s = second_bytes / first_bytes, second_s / first_s
    ratio_body = second_body / first_body
    print_table([
        ("response bytes (recrawl)", f"{second_bytes:,}", f"{first_bytes:,} first crawl",
         f"{ratio_bytes:.3f}", "< 0.2"),
        ("body bytes sent (recrawl)", f"{second_body:,}", f"{first_body:,} first crawl",
         f"{ratio_body:.3f}", ""),
        ("seconds (recrawl)", f"{second_s:.1f}", f"{first_s:.1f} first crawl",
         f"{ratio_s:.2f}", ""),
    ])
    print(f"site changes: {dict(kinds)}; recrawl answers by status: {dict(answers)}; "
          f"pages marked: {marks}")
    write_results("recrawl", [
        {"name": "ratio_bytes_recrawl_vs_first", "value": round(ratio_bytes, 4),
         "target": "< 0.2"},
        {"name": "ratio_body_bytes_recrawl_vs_first", "value": round(ratio_body, 4)},
        {"name": "ratio_seconds_recrawl_vs_first", "value": round(ratio_s, 3)},
    ], pages=args.pages, first_bytes=first_bytes, recrawl_bytes=second_bytes,
        first_seconds=first_s, recrawl_seconds=second_s, site_changes=dict(kinds),
        recrawl_answers={str(k): v for k, v in answers.items()},
        pages_marked={str(k): v for k, v in marks.items()})


if __name__ == "__main__":
    main()
