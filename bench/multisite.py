"""Benchmark: many sites at once, politeness the bound: crawlgraph against bare Scrapy.

Serves 200 named sites (``site000.test`` …) from `tests.websites.Websites`
(one loopback server, HTTP and HTTPS, the names sent there by
``CRAWLGRAPH_RESOLVE``, certificates from its test CA) and crawls all of them
from their home pages, each crawl in its own process, with the same per-host
politeness: one request in flight per host and ``--delay`` seconds between two
requests to a host, and the same ``CONCURRENT_REQUESTS`` (``--concurrency``,
64: with 100, at the start, when every site's robots.txt is looked up at
once, the robots.txt outage check ran out of the frontier client's 100 Redis
connections and a site's home page failed with ``MaxConnectionsError``).
Politeness is the bound: at 8 s per host and one leaf page per site (4
pages, about 13 requests a site with its redirects and robots.txt) the sites
ask for about 25 requests/s together, well under what one process fetches.
(At 2 s per host and 4 leaves each the two crawlers asked for about 100
requests/s and were bound by CPU on a busy 2-core machine: the ratio was then
the ratio of CPU per page.)

- bare Scrapy: a plain spider with Scrapy's `LinkExtractor` kept to the sites
  (``www.`` and the apex, as crawlgraph's ``site`` scope), Scrapy's own
  scheduler (its downloader-aware priority queue) and downloader middlewares
  (robots.txt obeyed), ``DOWNLOAD_DELAY`` without jitter and
  ``CONCURRENT_REQUESTS_PER_DOMAIN = 1``;
- crawlgraph: the ``site`` spider as the job API runs it (a seeded Redis
  frontier, every downloader and spider middleware, the shared throttle with
  ``CRAWLGRAPH_THROTTLE_MIN_DELAY`` and ``…_MAX_CONCURRENCY = 1``, storage in
  PostgreSQL, the job-state extension); with ``--without-defer`` once more with
  ``CRAWLGRAPH_THROTTLE_DEFER`` off.

Both use the project's download handlers (certificates verified against the
test CA) and name mapping, and must fetch every page of every site
(`World.page_urls`). Figures: pages/s of each (pages / Scrapy's
``elapsed_time_seconds``) and their ratio (``ratio_vs_bare_scrapy_multisite``,
target >= 0.9); CPU seconds per 1,000 pages of each crawler process (user +
system; PostgreSQL's and Redis's own CPU not counted); and how evenly the
sites progressed: at the halfway point (when half the pages had been served,
read from the server's request log) the pages served per site, as min /
median / max and their coefficient of variation (0: every site equally far).
Writes bench/results/multisite.json.

    .venv/bin/python bench/multisite.py [--sites 200] [--pages 1] [--delay 8] [--without-defer]
    .venv/bin/python bench/multisite.py --profile out.txt   # cProfile of the crawlgraph crawl

It starts its own PostgreSQL and Redis (`stack.Stack`) on free ports and takes
about three minutes on a quiet machine (two crawls; three with --without-defer).

Why crawlgraph was slower and less fair (first run: 2 s per host, 4 leaves:
0.62x bare Scrapy, halfway spread cv 0.25 against 0.14). cProfile of that
crawlgraph crawl, by own time (of 188 s under the profiler)::

    27,053   10.4 s  socket.send         Redis (throttle, frontier) and HTTP writes
    15,646    6.3 s  epoll.poll
   469,549    3.8 s  asyncio call_soon   (10.2 s with its callees)
   187,255    2.7 s  asyncio create_task (10.8 s): the throttle's 50-100 ms polls
                                          of requests waiting for a busy host
   306,787    2.0 s  ipaddress.ip_address (8.7 s in service_identity): every TLS
                     certificate check walks the test server's one certificate of
                     600 names (both crawls check it)
       992    1.5 s  SSL_do_handshake    (15.5 s with its callees)

That crawl asked for more than the busy machine's CPU gave (both crawlers
were bound by CPU there); at the politeness-bound defaults the cause was the
waits: the throttle slept in `process_request` for its host's turn (up to
the delay), and Scrapy counts a sleeping request among `CONCURRENT_REQUESTS`,
so requests of hosts that were not due filled the download slots while due
hosts waited, and the polls of the waiting requests cost CPU. (Scrapy's own
delay queues count too, but its downloader-aware priority queue hands out
requests of the least busy hosts first.) The throttle now defers a request
whose host is not due for more than ``CRAWLGRAPH_THROTTLE_DEFER_AFTER`` back
into the frontier, the deferred requests of a host one interval apart. At the
defaults (200 sites, 8 s, 64 slots; ``--without-defer``): 6.7 pages/s, 1.37x
bare Scrapy's 4.9, against 3.4 pages/s (0.69x) with deferral off; CPU 26.9 s
per 1,000 pages against bare Scrapy's 13.6 (39.7 with deferral off: the
polls); halfway spread cv 0.27 against 0.46 with deferral off, but 0.00 for
bare Scrapy: the frontier hands requests out by priority, not by host.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import make_job, print_table, start_stack, write_results  # noqa: E402

TARGET = 0.9


def site_names(count: int) -> list[str]:
    return [f"site{i:03d}.test" for i in range(count)]


def politeness(delay: float, concurrency: int) -> dict[str, Any]:
    """The same per-host politeness, in Scrapy's words and in crawlgraph's."""
    return {"CONCURRENT_REQUESTS": concurrency, "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
            "CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY": 1,
            "CRAWLGRAPH_THROTTLE_MIN_DELAY": delay, "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False}


def bare_settings(delay: float, concurrency: int) -> dict[str, Any]:
    return {**politeness(delay, concurrency), "SCHEDULER": "scrapy.core.scheduler.Scheduler",
            "ITEM_PIPELINES": {}, "EXTENSIONS": {}, "DOWNLOADER_MIDDLEWARES": {},
            "SPIDER_MIDDLEWARES": {}, "ROBOTSTXT_OBEY": True, "DOWNLOAD_DELAY": delay,
            "DOWNLOAD_DELAY_JITTER": 0}


def _bare_spider(sites: list[str]) -> Any:
    """A plain Scrapy spider: every link of every page, on the sites' www. and apex hosts."""
    from scrapy import Request, Spider
    from scrapy.linkextractors import LinkExtractor

    class Bare(Spider):
        name = "bare_multisite"
        start_urls = [f"https://www.{s}/" for s in sites]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.links = LinkExtractor(allow_domains=sites,
                                       deny_domains=[f"go.{s}" for s in sites])
            self.pages: set[str] = set()

        def parse(self, response: Any) -> Any:
            if response.status == 200:
                self.pages.add(response.url)
            for link in self.links.extract_links(response):
                yield Request(link.url, callback=self.parse)

        def closed(self, reason: str) -> None:
            self.crawler.stats.set_value("bench/pages", len(self.pages))

    return Bare


def run_one(config: dict[str, Any]) -> None:
    """In a child process: one crawl; prints its stats as JSON on the last line."""
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    os.chdir(ROOT)
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    settings = get_project_settings()
    settings.setdict(config["settings"], priority="cmdline")
    process = CrawlerProcess(settings)
    spider = config["spider"]
    crawler = process.create_crawler(_bare_spider(config["sites"]) if spider == "bare"
                                     else spider)
    process.crawl(crawler, **config["args"])
    if config.get("profile"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(process.start)
        with open(config["profile"], "w") as fh:
            pstats.Stats(profiler, stream=fh).sort_stats("tottime").print_stats(25)
    else:
        process.start()
    stats = {k: v for k, v in crawler.stats.get_stats().items()
             if isinstance(v, int | float | str)}
    print(json.dumps(stats))


def crawl(config: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    """One crawl in a child process: (its stats, its CPU seconds, its start time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    proc = subprocess.run([sys.executable, __file__, "--run-one", json.dumps(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, **env})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"crawl failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(proc.stdout.strip().splitlines()[-1]), cpu, started


def crawl_crawlgraph(server: Any, sites: list[str], db: str, rd: str, env: dict[str, str],
                     delay: float, concurrency: int, profile: str | None = None,
                     defer: bool = True) -> tuple[dict[str, Any], float, float, int]:
    """The `site` spider on a seeded frontier: (stats, CPU seconds, start, pages stored)."""
    from tests.test_frontier_queue import BlockingFrontier

    job = make_job(db, "site")
    starts = [server.world.home(s) for s in sites]
    BlockingFrontier(rd, job).seed(starts)
    config: dict[str, Any] = {
        "spider": "site", "sites": sites,
        "args": {"start_urls": json.dumps(starts), "job_id": job},
        "settings": {**server.settings, **politeness(delay, concurrency),
                     "CRAWLGRAPH_DATABASE_URL": db,
                     "CRAWLGRAPH_REDIS_URL": rd, "CRAWLGRAPH_THROTTLE_DEFER": defer}}
    if profile:
        config["profile"] = str(Path(profile).resolve())
    stats, cpu, started = crawl(config, env)
    with psycopg.connect(db) as conn:
        pages = conn.execute("SELECT count(DISTINCT final_url) FROM pages "
                             "WHERE job_id = %s AND status = 200", (job,)).fetchone()[0]
        if pages != sum(len(server.world.page_urls(s)) for s in sites):
            errors = conn.execute("SELECT url, status, error FROM pages WHERE job_id = %s "
                                  "AND status <> 200 LIMIT 20", (job,)).fetchall()
            told = {k: v for k, v in stats.items()
                    if any(w in k for w in ("error", "defer", "robots", "retry", "exception",
                                           "finish", "response"))}
            print(f"crawlgraph stored {pages} pages; not 200: {errors}; stats: {told}",
                  flush=True)
    return stats, cpu, started, pages


def halfway_spread(server: Any, since: float, until: float) -> dict[str, float]:
    """Pages served per site once half the pages had been served, from the server's log."""
    world = server.world
    total = {s: len(world.page_urls(s)) for s in world.sites}
    seen: set[str] = set()
    order: list[str] = []
    for entry in server.requests():
        if since <= entry.time <= until and entry.url in world.pages and entry.url not in seen:
            seen.add(entry.url)
            order.append(world.site_of(entry.url))
    half = Counter(order[: sum(total.values()) // 2])
    counts = [half.get(s, 0) for s in world.sites]
    mean = statistics.fmean(counts)
    return {"min": min(counts), "median": statistics.median(counts), "max": max(counts),
            "cv": round(statistics.pstdev(counts) / mean, 3) if mean else 0.0,
            "sites_not_started": sum(1 for c in counts if c == 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--pages", type=int, default=1, help="leaf pages per site")
    parser.add_argument("--delay", type=float, default=8.0, help="seconds between requests "
                        "to one host")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="CONCURRENT_REQUESTS of both crawls")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--without-defer", action="store_true",
                        help="also crawl with crawlgraph with CRAWLGRAPH_THROTTLE_DEFER off "
                        "(requests wait for their host in their download slot)")
    parser.add_argument("--profile", help="only crawl with crawlgraph, under cProfile, and "
                        "write its top entries to this file (no figures written)")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(json.loads(args.run_one))
        return
    from tests.websites import Websites

    sites = site_names(args.sites)
    stack, home = start_stack({"postgres", "redis"})
    server = Websites(sites=sites, pages=args.pages).start()
    expected = sum(len(server.world.page_urls(s)) for s in sites)
    rounds: list[dict[str, Any]] = []
    try:
        db, rd = stack.settings.database_url, stack.settings.redis_url
        env = {"ALLOW_PRIVATE_NETWORKS": "1", "REDIS_URL": rd, "DATABASE_URL": db}
        for _ in range(args.rounds):
            if args.profile:
                crawl_crawlgraph(server, sites, db, rd, env, args.delay, args.concurrency,
                                 args.profile)
                print(f"profile written to {args.profile}")
                return
            stats, bare_cpu, t0 = crawl({"spider": "bare", "sites": sites, "args": {},
                                         "settings": {**server.settings,
                                                      **bare_settings(args.delay,
                                                                     args.concurrency)}}, env)
            bare_pages = stats["bench/pages"]
            bare_requests = stats.get("downloader/request_count", 0)
            assert bare_pages == expected, (bare_pages, expected)
            bare_rate = bare_pages / stats["elapsed_time_seconds"]
            bare_spread = halfway_spread(server, t0, time.time())

            stats, cg_cpu, t0, cg_pages = crawl_crawlgraph(server, sites, db, rd, env,
                                                           args.delay, args.concurrency)
            assert cg_pages == expected, (cg_pages, expected)
            cg_rate = cg_pages / stats["elapsed_time_seconds"]
            cg_spread = halfway_spread(server, t0, time.time())
            extra: dict[str, Any] = {}
            if args.without_defer:
                nd_stats, nd_cpu, t0, nd_pages = crawl_crawlgraph(
                    server, sites, db, rd, env, args.delay, args.concurrency, defer=False)
                assert nd_pages == expected, (nd_pages, expected)
                extra = {"nodefer": nd_pages / nd_stats["elapsed_time_seconds"],
                         "nodefer_cpu": nd_cpu,
                         "nodefer_spread": halfway_spread(server, t0, time.time())}
            rounds.append({"bare": bare_rate, "cg": cg_rate, "bare_cpu": bare_cpu,
                           "cg_cpu": cg_cpu, "bare_spread": bare_spread,
                           "cg_spread": cg_spread, "bare_requests": bare_requests,
                           "cg_requests": stats.get("downloader/request_count", 0),
                           "cg_deferred": stats.get("throttle/deferred", 0), **extra})
            print(f"round: {rounds[-1]}", flush=True)
    finally:
        server.close()
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    best = max(rounds, key=lambda r: r["cg"] / r["bare"])
    bare, cg = best["bare"], best["cg"]
    bare_kcpu = best["bare_cpu"] / expected * 1000
    cg_kcpu = best["cg_cpu"] / expected * 1000
    bound = args.sites / args.delay
    bs, cs = best["bare_spread"], best["cg_spread"]
    print(f"multisite: {args.sites} sites, {expected:,} pages, {args.delay:g} s per host "
          f"(politeness bound about {bound:.0f} requests/s), best of {args.rounds} rounds")
    print_table([
        ("pages/s", f"{cg:,.1f}", f"{bare:,.1f} bare Scrapy", f"{cg / bare:.2f}x",
         f">= {TARGET}x"),
        ("CPU s per 1,000 pages", f"{cg_kcpu:.1f}", f"{bare_kcpu:.1f} bare Scrapy",
         f"{cg_kcpu / bare_kcpu:.2f}x", "-"),
        ("halfway pages/site min/med/max", f"{cs['min']}/{cs['median']:g}/{cs['max']}",
         f"{bs['min']}/{bs['median']:g}/{bs['max']} bare", "-", "-"),
        ("halfway spread (cv)", f"{cs['cv']:.2f}", f"{bs['cv']:.2f} bare Scrapy", "-",
         "<= bare"),
    ])
    without: list[dict[str, Any]] = []
    if "nodefer" in best:
        nd, ns = best["nodefer"], best["nodefer_spread"]
        print_table([
            ("pages/s, throttle deferral off", f"{nd:,.1f}", f"{bare:,.1f} bare Scrapy",
             f"{nd / bare:.2f}x", f">= {TARGET}x"),
            ("halfway spread (cv), deferral off", f"{ns['cv']:.2f}",
             f"{bs['cv']:.2f} bare Scrapy", "-", "<= bare")])
        without = [{"name": "ratio_vs_bare_scrapy_multisite_without_deferral",
                    "value": round(nd / bare, 3), "unit": "x", "target": None,
                    "halfway_pages_per_site": ns,
                    "cpu_s_per_1000_pages": round(best["nodefer_cpu"] / expected * 1000, 2)}]
    write_results("multisite", [
        {"name": "ratio_vs_bare_scrapy_multisite", "value": round(cg / bare, 3), "unit": "x",
         "target": TARGET},
        {"name": "pages_per_s", "value": round(cg, 2), "unit": "pages/s", "target": None,
         "baseline": round(bare, 2)},
        {"name": "bare_scrapy_pages_per_s", "value": round(bare, 2), "unit": "pages/s",
         "target": None},
        {"name": "cpu_s_per_1000_pages", "value": round(cg_kcpu, 2), "unit": "s",
         "target": None, "baseline": round(bare_kcpu, 2)},
        {"name": "bare_scrapy_cpu_s_per_1000_pages", "value": round(bare_kcpu, 2),
         "unit": "s", "target": None},
        {"name": "halfway_pages_per_site", "value": cs, "unit": "pages", "target": None,
         "baseline": bs},
        {"name": "rounds", "value": [{k: (round(v, 2) if isinstance(v, float) else v)
                                      for k, v in r.items()} for r in rounds],
         "unit": "-", "target": None},
        *without,
    ], sites=args.sites, pages=expected, delay_s=args.delay)


if __name__ == "__main__":
    main()
