"""Benchmark: crawl speed with WARC archiving on against the same crawl without it.

Serves a generated site (default 2,000 pages) from the local mock server
(`tests.mockserver`) and crawls it with the `site` spider (every crawling
middleware on but the per-host throttle, Scrapy's in-memory scheduler, items
to a file: `tests.crawlrun`) twice per round, each in its own process: once
plain, once with ``warc: true`` (`crawler.middlewares.warc`: every request and
response written as gzipped WARC records by a writer thread). The figure is
pages/s from Scrapy's own ``elapsed_time_seconds``, the best of ``--rounds``
rounds for each, and the median of the per-round ratios (single rounds vary a
lot on a shared machine). Writes bench/results/warc.json.

    .venv/bin/python bench/warc.py [--pages N] [--rounds N]

Target: at least 0.8x the crawl without WARC files.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table, write_results  # noqa: E402
from tests.crawlrun import run_crawl  # noqa: E402
from tests.mockserver import MockServer  # noqa: E402

SITE = "crawler.spiders.site.SiteSpider"
TARGET = 0.8
# One local host: without the per-host throttle the crawl is bound by the CPU, where
# the cost of archiving shows.
UNTHROTTLED = {"CRAWLGRAPH_THROTTLE_ENABLED": False, "CONCURRENT_REQUESTS_PER_DOMAIN": 16}


def crawl(server: MockServer, warc: bool) -> tuple[float, int, int]:
    """(pages/s, pages, WARC bytes) of one crawl of the server's site."""
    with tempfile.TemporaryDirectory(prefix="crawlgraph-bench-warc-") as out:
        args = {"start_urls": json.dumps([server.start_url]), "warc": str(warc).lower()}
        settings = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True, "LOG_LEVEL": "WARNING",
                    "CRAWLGRAPH_WARC_DIR": out, **UNTHROTTLED}
        result = run_crawl(SITE, args, settings, timeout=600)
        if result.reason != "finished":
            raise SystemExit(f"the crawl did not finish ({result.reason}):\n{result.log[-2000:]}")
        pages = len(result.pages)
        size = sum(p.stat().st_size for p in Path(out).iterdir())
        return pages / result.stats["elapsed_time_seconds"], pages, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    server = MockServer(pages=opts.pages, seed=1).start()
    try:
        rounds = []
        for _ in range(opts.rounds):
            plain, pages, _ = crawl(server, False)
            archived, pages_warc, size = crawl(server, True)
            assert pages == pages_warc == opts.pages, (pages, pages_warc)
            rounds.append({"pages_per_s_plain": plain, "pages_per_s_warc": archived,
                           "warc_bytes": size})
            print(f"round: {plain:.0f} pages/s plain, {archived:.0f} with WARC ({size} bytes)")
    finally:
        server.close()
    best_plain = max(r["pages_per_s_plain"] for r in rounds)
    best_warc = max(r["pages_per_s_warc"] for r in rounds)
    median_ratio = statistics.median(r["pages_per_s_warc"] / r["pages_per_s_plain"]
                                     for r in rounds)
    print_table([
        ("pages/s with WARC (best)", f"{best_warc:.0f}", f"{best_plain:.0f}",
         f"{best_warc / best_plain:.2f}", f">= {TARGET}"),
        ("median ratio of rounds", f"{median_ratio:.2f}", "1.00", "", f">= {TARGET}"),
    ])
    write_results("warc", rounds, pages=opts.pages,
                  pages_per_s_plain=round(best_plain, 1), pages_per_s_warc=round(best_warc, 1),
                  ratio_pages_per_s_warc_vs_plain=round(best_warc / best_plain, 3),
                  median_ratio=round(median_ratio, 3), target=TARGET)


if __name__ == "__main__":
    main()
