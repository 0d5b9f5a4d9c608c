"""Benchmark: crawl speed with the crawlgraph frontier and storage against bare Scrapy.

Serves a generated site (default 3,000 pages) from the local mock server
(`tests.mockserver`, asyncio, keep-alive) and crawls it with the `follow`
spider twice per round, each crawl in its own process:

- bare Scrapy: the in-memory scheduler, no item pipelines, no extensions;
- crawlgraph: the Redis frontier (leases, acknowledgements), the storage
  pipeline writing every page and link to PostgreSQL, and the job-state extension.

Both use the project's settings otherwise (same concurrency), with Scrapy's
stock downloader middlewares (the crawling middlewares of `crawler.middlewares`
are measured by a third crawl: the `site` spider with all of them on). The
figure is pages/s from Scrapy's own ``elapsed_time_seconds``; the best of
``--rounds`` rounds counts for each, and the median of the per-round ratios is
printed too (on a shared machine single rounds vary a lot). Writes bench/results/crawl.json.

    .venv/bin/python bench/crawl.py [--pages N] [--rounds N]

It starts its own PostgreSQL and Redis (`stack.Stack`) in a temporary
directory on free ports. Target: at least 0.8x bare Scrapy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import make_job, print_table, start_stack, write_results  # noqa: E402

# Scrapy's stock downloader middlewares in both crawls: the figure is what the
# frontier and the storage cost, not what politeness (throttle, robots.txt) costs.
COMMON = {"LOG_LEVEL": "WARNING", "ROBOTSTXT_OBEY": False, "TELNETCONSOLE_ENABLED": False,
          "DOWNLOADER_MIDDLEWARES": {}}
BARE = {"SCHEDULER": "scrapy.core.scheduler.Scheduler", "ITEM_PIPELINES": {},
        "EXTENSIONS": {}}


def run_one(config: dict) -> None:
    """In a child process: one crawl; prints its stats as JSON on the last line."""
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    os.chdir(ROOT)
    # The project's settings plus the test spiders: `follow` lives in tests/spiders.
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "tests.spiders.settings")
    settings = get_project_settings()
    settings.setdict(config["settings"], priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(config.get("spider", "follow"))
    process.crawl(crawler, **config["args"])
    process.start()
    stats = {k: v for k, v in crawler.stats.get_stats().items()
             if isinstance(v, int | float | str)}
    print(json.dumps(stats))


def crawl(args: dict, settings: dict, env: dict[str, str], spider: str = "follow",
          kit: bool = False) -> dict:
    # `kit`: the project's own downloader middlewares (robots.txt, shared throttle,
    # user agents, retries, blocks, limits, address guard) instead of Scrapy's stock ones.
    common = {k: v for k, v in COMMON.items()
              if not kit or k not in ("DOWNLOADER_MIDDLEWARES", "ROBOTSTXT_OBEY")}
    config = {"args": args, "settings": {**common, **settings}, "spider": spider}
    proc = subprocess.run([sys.executable, __file__, "--run-one", json.dumps(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env})
    if proc.returncode != 0:
        raise SystemExit(f"crawl failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])




def crawl_kit(server, db: str, rd: str, env: dict[str, str], pages: int) -> float:
    """The `site` spider as the job API runs it: seeded frontier, every middleware on."""
    from tests.test_frontier_queue import BlockingFrontier

    job = make_job(db, "site")
    BlockingFrontier(rd, job).seed([server.start_url])
    stats = crawl({"start_urls": json.dumps([server.start_url]), "job_id": job},
                  {"CRAWLGRAPH_DATABASE_URL": db, "CRAWLGRAPH_REDIS_URL": rd}, env,
                  spider="site", kit=True)
    with psycopg.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM pages WHERE job_id = %s",
                              (job,)).fetchone()[0]
    assert stored == pages, stored
    return stored / stats["elapsed_time_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(json.loads(args.run_one))
        return
    from tests.mockserver import MockServer

    stack, home = start_stack({"postgres", "redis"})
    server = MockServer(pages=args.pages, seed=1).start()
    bare_rates, cg_rates, kit_rates = [], [], []
    try:
        db, rd = stack.settings.database_url, stack.settings.redis_url
        # The mock server is on loopback; the shared throttle of both crawls uses Redis.
        env = {"ALLOW_PRIVATE_NETWORKS": "1", "REDIS_URL": rd, "DATABASE_URL": db}
        for _ in range(args.rounds):
            stats = crawl({"start_urls": server.start_url}, BARE, env)
            assert stats.get("response_received_count") == args.pages, stats
            bare_rates.append(stats["response_received_count"] / stats["elapsed_time_seconds"])
            job = make_job(db, "follow")
            stats = crawl({"start_urls": server.start_url, "job_id": job},
                          {"CRAWLGRAPH_DATABASE_URL": db, "CRAWLGRAPH_REDIS_URL": rd}, env)
            assert stats.get("response_received_count") == args.pages, stats
            with psycopg.connect(db) as conn:
                stored = conn.execute("SELECT count(*) FROM pages WHERE job_id = %s",
                                      (job,)).fetchone()[0]
            assert stored == args.pages, stored
            cg_rates.append(stats["response_received_count"] / stats["elapsed_time_seconds"])
            kit_rates.append(crawl_kit(server, db, rd, env, args.pages))
            print(f"round: bare {bare_rates[-1]:.0f} pages/s, crawlgraph {cg_rates[-1]:.0f} "
                  f"pages/s, site spider with every middleware {kit_rates[-1]:.0f} pages/s",
                  flush=True)
    finally:
        server.close()
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    bare, cg, kit = max(bare_rates), max(cg_rates), max(kit_rates)
    ratios = sorted(c / b for b, c in zip(bare_rates, cg_rates, strict=True))
    median_ratio = ratios[len(ratios) // 2]
    print(f"crawl: {args.pages:,}-page site, best of {args.rounds} rounds")
    print_table([("pages/s (frontier + storage)", f"{cg:,.0f}", f"{bare:,.0f} bare Scrapy",
                  f"{cg / bare:.2f}x", ">= 0.8x"),
                 ("pages/s (site spider, every middleware)", f"{kit:,.0f}",
                  f"{bare:,.0f} bare Scrapy", f"{kit / bare:.2f}x", ">= 0.8x"),
                 ("median of per-round ratios", f"{median_ratio:.2f}x", "-", "-", "-")])
    write_results("crawl", [
        {"name": "ratio_vs_bare_scrapy", "value": round(cg / bare, 3), "unit": "x",
         "target": 0.8},
        {"name": "pages_per_s", "value": round(cg, 1), "unit": "pages/s", "target": None,
         "baseline": round(bare, 1)},
        {"name": "bare_scrapy_pages_per_s", "value": round(bare, 1), "unit": "pages/s",
         "target": None},
        {"name": "median_round_ratio", "value": round(median_ratio, 3), "unit": "x",
         "target": None,
         "rounds": [[round(b, 1), round(c, 1)] for b, c in zip(bare_rates, cg_rates,
                                                               strict=True)]},
        {"name": "ratio_full_kit_vs_bare_scrapy", "value": round(kit / bare, 3), "unit": "x",
         "target": 0.8, "baseline": round(bare, 1)},
        {"name": "pages", "value": args.pages, "unit": "pages", "target": 2000},
    ])


if __name__ == "__main__":
    main()
