"""Benchmark: storing rows through the storage pipeline against a raw COPY.

Writes 1,000,000 link rows and 100,000 page rows through `StoragePipeline`
(validation, batches of CRAWLGRAPH_BATCH_SIZE rows, binary COPY into staging,
INSERT ... ON CONFLICT, one transaction per batch, the storage thread), then the
same rows with one raw binary COPY each into empty tables with the same columns
and indexes. Prints rows/s and the ratio; writes bench/results/insert.json.

    .venv/bin/python bench/insert.py [--links N] [--pages N] [--batch-size N]

It starts its own PostgreSQL (`stack.Stack`) in a temporary directory on
a free port, and removes it afterwards. Targets: at least 100,000 link rows/s
through the pipeline, and at least 0.5x the raw COPY.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import make_job, print_table, start_stack, write_results  # noqa: E402
from crawler.items import Link, Page  # noqa: E402
from crawler.pipelines import StoragePipeline  # noqa: E402


def make_items(links: int, pages: int) -> tuple[list[Page], list[Link]]:
    now = datetime.now(UTC)
    page_items = [Page(url=f"https://example.org/p/{i}", final_url=f"https://example.org/p/{i}",
                       status=200, content_type="text/html", title=f"Page {i}", depth=i % 7,
                       fetched_at=now, size=5000 + i % 1000, content_hash=f"{i:064x}",
                       elapsed_ms=i % 300, etag=f'"{i:016x}"',
                       last_modified="Wed, 02 Dec 2026 01:00:00 GMT", change="unchanged",
                       # One page in ten a variant declaring its main page canonical.
                       canonical_url=f"https://example.org/p/{i - 1}" if i % 10 == 1 else None)
                  for i in range(pages)]
    # Ten links per source page, like a crawl yields them.
    link_items = [Link(source_url=f"https://example.org/p/{i // 10}",
                       target_url=f"https://example.org/p/{(i * 7919) % (links // 3 + 1)}/{i}",
                       anchor_text=f"link {i}", nofollow=i % 17 == 0)
                  for i in range(links)]
    return page_items, link_items


async def through_pipeline(url: str, job: str, items: list, batch_size: int) -> float:
    buffer_max = 50_000  # CRAWLGRAPH_BUFFER_MAX_ROWS's default
    pipeline = StoragePipeline(url, job, batch_size=batch_size, flush_seconds=1.0,
                               buffer_max_rows=buffer_max)
    await pipeline.open_spider()
    start = time.perf_counter()
    for offset in range(0, len(items), 1000):
        for item in items[offset:offset + 1000]:
            pipeline.process_item(item)
        # The crawl's engine would pause here: wait while the buffer is full.
        while pipeline.buffered >= buffer_max:
            await pipeline.wait_committed(pipeline.committed + 1)
        await asyncio.sleep(0)  # let the event loop run, as between responses
    await pipeline.wait_committed(pipeline.commit_barrier())
    elapsed = time.perf_counter() - start
    await pipeline.close_spider()
    return elapsed


RAW_TABLES = """
CREATE TABLE raw_links (LIKE links INCLUDING ALL);
CREATE TABLE raw_pages (LIKE pages INCLUDING ALL);
"""


def raw_copy(url: str, job: str, pages: list[Page], links: list[Link]) -> tuple[float, float]:
    job_uuid = uuid.UUID(job)
    link_rows = [(job_uuid, x.source_url, x.target_url, x.count, x.anchor_text, x.nofollow)
                 for x in links]
    page_rows = [(job_uuid, p.url, p.final_url, p.status, p.content_type, p.title, p.depth,
                  p.fetched_at, p.size, p.content_hash, p.elapsed_ms, p.rendered, p.error,
                  p.discovered, p.canonical_url, p.etag, p.last_modified, p.change)
                 for p in pages]
    with psycopg.connect(url) as conn:
        conn.execute(RAW_TABLES)
        conn.commit()
        timings = []
        for table, rows, types in (
            ("raw_links", link_rows, ["uuid", "text", "text", "int4", "text", "bool"]),
            ("raw_pages", page_rows, ["uuid", "text", "text", "int4", "text", "text", "int4",
                                      "timestamptz", "int8", "text", "int4", "bool", "text",
                                      "text", "text", "text", "text", "text"]),
        ):
            start = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(types)
                for row in rows:
                    cp.write_row(row)
            conn.commit()
            timings.append(time.perf_counter() - start)
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    stack, home = start_stack({"postgres"})
    try:
        url = stack.settings.database_url
        pages, links = make_items(args.links, args.pages)
        job = make_job(url)
        link_s = asyncio.run(through_pipeline(url, job, links, args.batch_size))
        page_s = asyncio.run(through_pipeline(url, job, pages, args.batch_size))
        with psycopg.connect(url) as conn:
            stored_links = conn.execute("SELECT count(*) FROM links").fetchone()[0]
            stored_pages = conn.execute("SELECT count(*) FROM pages").fetchone()[0]
        assert (stored_links, stored_pages) == (len(links), len(pages)), (stored_links,
                                                                         stored_pages)
        raw_link_s, raw_page_s = raw_copy(url, job, pages, links)
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    link_rate, raw_link_rate = len(links) / link_s, len(links) / raw_link_s
    page_rate, raw_page_rate = len(pages) / page_s, len(pages) / raw_page_s
    results = [
        {"name": "link_rows_per_s", "value": round(link_rate), "unit": "rows/s",
         "target": 100_000, "baseline": round(raw_link_rate)},
        {"name": "ratio_vs_raw_copy", "value": round(link_rate / raw_link_rate, 3),
         "unit": "x", "target": 0.5},
        {"name": "page_rows_per_s", "value": round(page_rate), "unit": "rows/s",
         "target": None, "baseline": round(raw_page_rate)},
        {"name": "page_ratio_vs_raw_copy", "value": round(page_rate / raw_page_rate, 3),
         "unit": "x", "target": None},
        {"name": "batch_size", "value": args.batch_size, "unit": "rows", "target": None},
    ]
    print(f"insert: {len(links):,} links and {len(pages):,} pages, batches of {args.batch_size}")
    print_table([
        ("link rows/s (pipeline)", f"{link_rate:,.0f}", f"{raw_link_rate:,.0f} raw COPY",
         f"{link_rate / raw_link_rate:.2f}x", ">= 100,000 and >= 0.5x"),
        ("page rows/s (pipeline)", f"{page_rate:,.0f}", f"{raw_page_rate:,.0f} raw COPY",
         f"{page_rate / raw_page_rate:.2f}x", "-"),
    ])
    write_results("insert", results)


if __name__ == "__main__":
    main()
