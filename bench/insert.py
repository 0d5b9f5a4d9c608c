"""Benchmark: storing rows through the storage pipeline against a raw COPY.

Writes 1,000,000 link rows and 100,000 page rows through `StoragePipeline`
(validation, batches of CRAWLGRAPH_BATCH_SIZE rows, binary COPY into staging,
INSERT ... ON CONFLICT, one transaction per batch, the storage thread), then the
same rows with one raw binary COPY each into empty tables with the same columns
and indexes (for the links: their URLs under their ids, and a row of packed
links per page).
Prints rows/s and the ratio, and the disk a stored link takes (its row, the
two indexes, and its share of the URLs' table and index); writes
bench/results/insert.json.

    .venv/bin/python bench/insert.py [--links N] [--pages N] [--batch-size N]
                                     [--unique-targets]

The links are ten per source page among as many URLs as sources, each URL the
target of ten links, as in a crawl; `--unique-targets` gives every link a
URL of its own, the shape this bench had before links were stored by id.

It starts its own PostgreSQL (`stack.Stack`) in a temporary directory on
a free port, and removes it afterwards. Targets: at least 150,000 link rows/s
through the pipeline and at least 0.8x the raw COPY; at most 120 bytes a link.
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

#: Disk per link when links held their two URLs (the table and its two indexes,
#: this bench with `--unique-targets`, before migrations/0023_url_ids.sql).
BYTES_PER_LINK_BY_TEXT = 381


def make_items(links: int, pages: int, unique_targets: bool = False
               ) -> tuple[list[Page], list[Link]]:
    now = datetime.now(UTC)
    page_items = [Page(url=f"https://example.org/p/{i}", final_url=f"https://example.org/p/{i}",
                       status=200, content_type="text/html", title=f"Page {i}", depth=i % 7,
                       fetched_at=now, size=5000 + i % 1000, content_hash=f"{i:064x}",
                       elapsed_ms=i % 300, etag=f'"{i:016x}"',
                       last_modified="Wed, 02 Dec 2026 01:00:00 GMT", change="unchanged",
                       # One page in ten a variant declaring its main page canonical.
                       canonical_url=f"https://example.org/p/{i - 1}" if i % 10 == 1 else None)
                  for i in range(pages)]
    # Ten links per source page, like a crawl yields them, among as many pages as
    # there are sources (each URL the target of ten links); or, with
    # `unique_targets`, every link to a URL of its own (the bench's shape before
    # links were stored by URL id).
    sources = links // 10 + 1

    def target(i: int) -> str:
        if unique_targets:
            return f"https://example.org/p/{(i * 7919) % (links // 3 + 1)}/{i}"
        return f"https://example.org/p/{(i * 7919) % sources}"

    link_items = [Link(source_url=f"https://example.org/p/{i // 10}", target_url=target(i),
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
CREATE TABLE raw_urls (LIKE urls INCLUDING ALL);
CREATE TABLE raw_outlinks (LIKE outlinks INCLUDING ALL);
CREATE TABLE raw_pages (LIKE pages INCLUDING ALL);
"""
# Table and indexes per stored link, the links' URLs included.
BYTES_PER_LINK = """
SELECT (pg_total_relation_size('outlinks') + pg_total_relation_size('urls'))::float8
       / greatest(1, (SELECT sum(length(target_ids) / 8) FROM outlinks))
"""


def raw_copy(url: str, job: str, pages: list[Page], links: list[Link]) -> tuple[float, float]:
    """The same rows the pipeline stored, each table with one raw binary COPY.

    The links' rows are the URLs under their ids and a row of packed links per
    page, as the pipeline stores them, read back from what it stored."""
    job_uuid = uuid.UUID(job)
    with psycopg.connect(url) as conn:
        url_rows = conn.execute("SELECT job_id, id, url FROM urls WHERE job_id = %s",
                                (job,)).fetchall()
        link_rows = conn.execute("SELECT job_id, source_id, target_ids, counts, nofollow, "
                                 "anchor_texts FROM outlinks WHERE job_id = %s",
                                 (job,)).fetchall()
    page_rows = [(job_uuid, p.url, p.final_url, p.status, p.content_type, p.title, p.depth,
                  p.fetched_at, p.size, p.content_hash, p.elapsed_ms, p.rendered, p.error,
                  p.discovered, p.canonical_url, p.etag, p.last_modified, p.change)
                 for p in pages]
    with psycopg.connect(url) as conn:
        conn.execute(RAW_TABLES)
        conn.commit()
        timings = []
        for table, rows, types in (
            ("raw_urls", url_rows, ["uuid", "int8", "text"]),
            ("raw_outlinks", link_rows, ["uuid", "int8", "bytea", "bytea", "bytea", "text[]"]),
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
    return timings[0] + timings[1], timings[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--unique-targets", action="store_true",
                        help="every link to a URL of its own (no URL shared by two links)")
    args = parser.parse_args()
    stack, home = start_stack({"postgres"})
    try:
        url = stack.settings.database_url
        pages, links = make_items(args.links, args.pages, args.unique_targets)
        job = make_job(url)
        link_s = asyncio.run(through_pipeline(url, job, links, args.batch_size))
        page_s = asyncio.run(through_pipeline(url, job, pages, args.batch_size))
        with psycopg.connect(url, autocommit=True) as conn:
            stored_links = conn.execute("SELECT sum(length(target_ids) / 8) FROM outlinks"
                                        ).fetchone()[0]
            stored_pages = conn.execute("SELECT count(*) FROM pages").fetchone()[0]
            conn.execute("VACUUM ANALYZE outlinks, urls")
            bytes_per_link = conn.execute(BYTES_PER_LINK).fetchone()[0]
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
         "target": 150_000, "baseline": round(raw_link_rate)},
        {"name": "ratio_vs_raw_copy", "value": round(link_rate / raw_link_rate, 3),
         "unit": "x", "target": 0.8},
        {"name": "bytes_per_link", "value": round(bytes_per_link, 1), "unit": "B",
         "target": 120, "baseline": BYTES_PER_LINK_BY_TEXT},
        {"name": "page_rows_per_s", "value": round(page_rate), "unit": "rows/s",
         "target": None, "baseline": round(raw_page_rate)},
        {"name": "page_ratio_vs_raw_copy", "value": round(page_rate / raw_page_rate, 3),
         "unit": "x", "target": None},
        {"name": "batch_size", "value": args.batch_size, "unit": "rows", "target": None},
    ]
    print(f"insert: {len(links):,} links and {len(pages):,} pages, batches of {args.batch_size}")
    print_table([
        ("link rows/s (pipeline)", f"{link_rate:,.0f}", f"{raw_link_rate:,.0f} raw COPY",
         f"{link_rate / raw_link_rate:.2f}x", ">= 150,000 and >= 0.8x"),
        ("disk per link (table, indexes, URLs)", f"{bytes_per_link:,.0f} B",
         f"{BYTES_PER_LINK_BY_TEXT} B by URL text", "-", "<= 120 B"),
        ("page rows/s (pipeline)", f"{page_rate:,.0f}", f"{raw_page_rate:,.0f} raw COPY",
         f"{page_rate / raw_page_rate:.2f}x", "-"),
    ])
    write_results("insert", results)


if __name__ == "__main__":
    main()
