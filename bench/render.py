"""Benchmark: crawling JavaScript-rendered pages with Chromium (scrapy-playwright).

Crawls a generated site of N pages (default 200) from the local mock server
with the `site` spider and `render_js=always`, every page rendered in the
system's Chromium, and samples the memory (PSS, so pages shared between Chromium's processes count
once) of the crawler process and
all its children (the Playwright driver and Chromium) while it runs. The
baseline is the same crawl without rendering (`render_js=never`).

Figures: `pages_per_s` (rendered), the plain crawl's pages/s and the ratio,
`peak_memory_mb`, and `memory_growth_mb`: the memory when the last quarter of
the pages is being fetched minus the memory when the first quarter was done.
Flat memory (bounded contexts and pages, every page closed) keeps it near 0;
the target is at most 50 MB however many pages are crawled.

    .venv/bin/python bench/render.py [--pages N]

Writes bench/results/render.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_results  # noqa: E402
from tests.mockserver import MockServer  # noqa: E402

GROWTH_TARGET_MB = 50.0




def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """Proportional set size of a process with its children, and of the process alone."""
    total = own = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # the crawl has just ended
        return 0, 0
    for p in family:
        try:
            pss = p.memory_full_info().pss
        except psutil.Error:
            continue
        total += pss
        if p.pid == proc.pid:
            own = pss
    return total, own


def crawl(server: MockServer, pages: int, render_js: str) -> dict:
    """One crawl in its own process; returns seconds, pages and memory samples."""
    server.clear_log()
    with tempfile.TemporaryDirectory() as out:
        config = {"spider": "crawler.spiders.site.SiteSpider",
                  "args": {"start_urls": server.start_url, "render_js": render_js},
                  "settings": {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True, "LOG_LEVEL": "WARNING",
                               "CRAWLGRAPH_THROTTLE_ADAPTIVE": False},
                  "stack": False, "out": out}
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "tests.crawlrun", json.dumps(config)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        # (pages fetched so far, PSS of the tree, PSS of the crawler process alone)
        samples: list[tuple[int, int, int]] = []
        stop = threading.Event()
        ps = psutil.Process(proc.pid)

        def sample() -> None:
            while not stop.is_set():
                fetched = sum(1 for _ in server.requests("/p/"))
                samples.append((fetched, *tree_rss(ps)))
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate(timeout=1800)
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        items = Path(out, "items.jsonl")
        stored = [json.loads(line) for line in items.read_text().splitlines()] \
            if items.exists() else []
    done = [i for i in stored if i["_type"] == "Page"]
    if len(done) != pages:
        raise SystemExit(f"crawl ({render_js}) stored {len(done)} of {pages} pages:\n{err[-3000:]}")
    return {"seconds": elapsed, "pages": len(done), "samples": samples,
            "rendered": sum(1 for p in done if p["rendered"])}


def growth(samples: list[tuple[int, int]], pages: int) -> tuple[float, float]:
    """(peak MB, MB at the last quarter minus MB at the first quarter)."""
    samples = [(n, rss) for n, rss in samples if rss]
    peak = max(rss for _, rss in samples) / 2**20
    early = [rss for n, rss in samples if pages * 0.2 <= n <= pages * 0.3]
    late = [rss for n, rss in samples if n >= pages * 0.75]
    if not early or not late:
        return peak, float("nan")
    return peak, (max(late) - max(early)) / 2**20


def crawler_share(samples: list[tuple[int, int, int]], pages: int) -> float:
    """The part of the growth in the crawler process itself (not Chromium), MB."""
    return growth([(n, own) for n, _, own in samples], pages)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    with MockServer(pages=args.pages, seed=5, links_per_page=5) as server:
        plain = crawl(server, args.pages, "never")
        rendered = crawl(server, args.pages, "always")
    assert rendered["rendered"] == args.pages
    pages_per_s = args.pages / rendered["seconds"]
    plain_per_s = args.pages / plain["seconds"]
    peak, grown = growth([(n, tree) for n, tree, _ in rendered["samples"]], args.pages)
    own = crawler_share(rendered["samples"], args.pages)
    results = [
        {"name": "pages_per_s", "value": round(pages_per_s, 2), "unit": "pages/s",
         "target": None},
        {"name": "plain_pages_per_s", "value": round(plain_per_s, 2), "unit": "pages/s",
         "target": None},
        {"name": "ratio_vs_plain", "value": round(pages_per_s / plain_per_s, 3), "unit": "x",
         "target": None},
        {"name": "peak_memory_mb", "value": round(peak, 1), "unit": "MB", "target": None},
        {"name": "memory_growth_mb", "value": round(grown, 1), "unit": "MB",
         "target": GROWTH_TARGET_MB},
        {"name": "crawler_process_growth_mb", "value": round(own, 1), "unit": "MB",
         "target": None},
    ]
    print(f"{'figure':<20} {'value':>10}  {'baseline':>22}  {'target':>10}")
    print(f"{'pages_per_s':<20} {pages_per_s:>10.2f}  {plain_per_s:>12.2f} (plain)  {'':>10}")
    print(f"{'peak_memory_mb':<20} {peak:>10.1f}  {'':>22}  {'':>10}")
    print(f"{'memory_growth_mb':<20} {grown:>10.1f}  {'':>22}  "
          f"{'<= ' + str(GROWTH_TARGET_MB):>10}")
    print(f"{'  of it the crawler':<20} {own:>10.1f}  (the rest: Playwright driver, Chromium)")
    print(f"({args.pages} pages, crawl times {rendered['seconds']:.1f} s rendered, "
          f"{plain['seconds']:.1f} s plain, both including process start)")
    write_results("render", results, pages=args.pages)


if __name__ == "__main__":
    main()
