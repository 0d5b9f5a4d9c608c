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

    .venv/bin/python bench/crawl.py [--pages N] [--rounds N] [--profile]

It starts its own PostgreSQL and Redis (`stack.Stack`) in a temporary
directory on free ports. Targets: the frontier and storage at 1.0x bare Scrapy or
more, every crawling middleware at 0.95x or more.

`--profile` runs the third crawl once under cProfile, in its crawler process,
and prints crawlgraph's functions by cumulative time, then every function by
its own time. Cumulative time of a coroutine is the time of its steps, not
of its waits; the calls column counts steps. On the 3,000-page site
(profiled CPU 55.6 s, then 53.5 s, on a busy 2-core machine), the top
entries were, before the shared throttle batched its Redis calls and
canonical URLs were cached:

    10.89s  spidermiddlewares/pages.py (process_spider_output: wraps the callback
            and the spider middlewares above it)
     6.07s  middlewares/throttleredis.py (_call: one Redis round trip per call,
            two calls per page: reserve, then release and adapt)
     4.57s  middlewares/throttle.py (process_request)
     3.81s  spiders/links.py (extract_links, once per response)
     2.53s  urls.py (canonicalize, 35,993 calls)
     2.44s  frontier/scheduler.py (enqueue_request)

and after:

    10.11s  spidermiddlewares/pages.py (process_spider_output)
     3.12s  spiders/links.py (extract_links)
     2.86s  frontier/scheduler.py (enqueue_request)
     2.76s  middlewares/throttleredis.py (_send: the calls made together, one
            pipeline per round trip)
     0.68s  urls.py (canonicalize, 6,000 computed; the others cached)
     0.46s  middlewares/throttle.py (process_request)

Scrapy runs the output of each response through `CONCURRENT_ITEMS` tasks, all
made per response; its default of 100 made about 100 tasks for 12 outputs. At 16
(the project's setting), the bare crawl alone, the two values in turns, four
pairs, idle machine: 259-298 pages/s at 100, 362-457 at 16. Both crawls of a
round use it, so the ratio does not show it: five rounds each, before and after,
the frontier and storage went from 241-307 pages/s to 300-399 and the site
spider with every middleware from 215-238 to 267-334, while bare Scrapy went
from 231-287 to 299-437 (median ratios 0.98x -> 0.91x and 0.80x -> 0.84x). The
top entries of the profile then (30.5 s of CPU, idle machine):

     6.87s  spidermiddlewares/pages.py (process_spider_output)
     1.92s  spidermiddlewares/traps.py (process_spider_output)
     1.79s  spiders/links.py (extract_links; anchor text now from lxml's itertext)
     1.62s  middlewares/throttleredis.py (_send)
     1.57s  spidermiddlewares/pages.py (response_page)
     1.24s  frontier/scheduler.py (enqueue_request: 1.53 s before requests were
            serialized without `Request.to_dict`'s `inspect.getmembers`)

What is left of the gap is mostly the spider kit's work per page (a Page and
its Link items, canonical URLs, scope, traps, through seven middlewares'
async generators) and the throttle's adaptive delay itself: a host's
requests start `latency / CRAWLGRAPH_THROTTLE_TARGET_CONCURRENCY` apart,
politeness that bare Scrapy, without AutoThrottle, does not have
(``throttle/delayed`` counts the requests it held back).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
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
# Where the functions the profile lists live (`--profile`).
OWNED = tuple(str(ROOT / d) for d in ("crawler", "core", "tests/spiders"))
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
    if config.get("profile"):
        profiler = cProfile.Profile()
        profiler.runcall(process.start)
        print_profile(pstats.Stats(profiler))
    else:
        process.start()
    stats = {k: v for k, v in crawler.stats.get_stats().items()
             if isinstance(v, int | float | str)}
    print(json.dumps(stats))


def print_profile(stats: pstats.Stats, top: int = 25) -> None:
    """On stderr (stdout is the stats): crawlgraph's functions by cumulative time, then
    every function by its own time."""
    rows = stats.stats.items()  # type: ignore[attr-defined]
    total = sum(row[2] for _, row in rows)
    print(f"profile: {total:.1f}s of CPU in Python functions; crawlgraph's by cumulative "
          "time:", file=sys.stderr)
    owned = sorted(((k, r) for k, r in rows if k[0].startswith(OWNED)), key=lambda kv: -kv[1][3])
    for key, (_, calls, _own, cum, _) in owned[:top]:
        print(f"  {cum:7.2f}s {calls:8d}  {_where(key)}", file=sys.stderr)
    print("every function by its own time:", file=sys.stderr)
    for key, (_, calls, own, _cum, _) in sorted(rows, key=lambda kv: -kv[1][2])[:top]:
        print(f"  {own:7.2f}s {calls:8d}  {_where(key)}", file=sys.stderr)


def _where(key: tuple[str, int, str]) -> str:
    path, line, name = key
    if path.startswith(str(ROOT)):
        path = str(Path(path).relative_to(ROOT))
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    return f"{path}:{line}({name})"


def crawl(args: dict, settings: dict, env: dict[str, str], spider: str = "follow",
          kit: bool = False, profile: bool = False) -> dict:
    # `kit`: the project's own downloader middlewares (robots.txt, shared throttle,
    # user agents, retries, blocks, limits, address guard) instead of Scrapy's stock ones.
    common = {k: v for k, v in COMMON.items()
              if not kit or k not in ("DOWNLOADER_MIDDLEWARES", "ROBOTSTXT_OBEY")}
    config = {"args": args, "settings": {**common, **settings}, "spider": spider,
              "profile": profile}
    proc = subprocess.run([sys.executable, __file__, "--run-one", json.dumps(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env})
    if proc.returncode != 0:
        raise SystemExit(f"crawl failed:\n{proc.stderr[-3000:]}")
    if profile:
        print(proc.stderr[proc.stderr.index("profile: "):], end="")
    return json.loads(proc.stdout.strip().splitlines()[-1])




def crawl_kit(server, db: str, rd: str, env: dict[str, str], pages: int,
              profile: bool = False) -> float:
    """The `site` spider as the job API runs it: seeded frontier, every middleware on."""
    from tests.test_frontier_queue import BlockingFrontier

    job = make_job(db, "site")
    BlockingFrontier(rd, job).seed([server.start_url])
    stats = crawl({"start_urls": json.dumps([server.start_url]), "job_id": job},
                  {"CRAWLGRAPH_DATABASE_URL": db, "CRAWLGRAPH_REDIS_URL": rd}, env,
                  spider="site", kit=True, profile=profile)
    with psycopg.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM pages WHERE job_id = %s",
                              (job,)).fetchone()[0]
    assert stored == pages, stored
    return stored / stats["elapsed_time_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="one crawl of the site spider with every middleware, under "
                             "cProfile: prints crawlgraph's functions by cumulative time")
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
        if args.profile:
            crawl_kit(server, db, rd, env, args.pages, profile=True)
            return
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
    kit_ratios = sorted(k / b for b, k in zip(bare_rates, kit_rates, strict=True))
    median_kit = kit_ratios[len(kit_ratios) // 2]
    print(f"crawl: {args.pages:,}-page site, best of {args.rounds} rounds")
    print_table([("pages/s (frontier + storage)", f"{cg:,.0f}", f"{bare:,.0f} bare Scrapy",
                  f"{cg / bare:.2f}x", ">= 1.0x"),
                 ("pages/s (site spider, every middleware)", f"{kit:,.0f}",
                  f"{bare:,.0f} bare Scrapy", f"{kit / bare:.2f}x", ">= 0.95x"),
                 ("median of per-round ratios", f"{median_ratio:.2f}x", "-", "-", "-"),
                 ("median of per-round ratios, every middleware", f"{median_kit:.2f}x", "-",
                  "-", "-")])
    write_results("crawl", [
        {"name": "ratio_vs_bare_scrapy", "value": round(cg / bare, 3), "unit": "x",
         "target": 1.0},
        {"name": "pages_per_s", "value": round(cg, 1), "unit": "pages/s", "target": None,
         "baseline": round(bare, 1)},
        {"name": "bare_scrapy_pages_per_s", "value": round(bare, 1), "unit": "pages/s",
         "target": None},
        {"name": "median_round_ratio", "value": round(median_ratio, 3), "unit": "x",
         "target": None,
         "rounds": [[round(b, 1), round(c, 1)] for b, c in zip(bare_rates, cg_rates,
                                                               strict=True)]},
        {"name": "ratio_full_kit_vs_bare_scrapy", "value": round(kit / bare, 3), "unit": "x",
         "target": 0.95, "baseline": round(bare, 1)},
        {"name": "median_round_ratio_full_kit", "value": round(median_kit, 3), "unit": "x",
         "target": None, "rounds": [[round(b, 1), round(k, 1)] for b, k in zip(
             bare_rates, kit_rates, strict=True)]},
        {"name": "pages", "value": args.pages, "unit": "pages", "target": 2000},
    ])


if __name__ == "__main__":
    main()
