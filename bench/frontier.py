"""Benchmark: Redis memory per seen URL in the frontier, at 1,000,000 URLs.

Pushes N distinct URLs (as serialized requests, 1,000 per call) into one job's
frontier, leases and acknowledges all of them (so only the seen-set is left,
as after a crawl), and reads Redis's ``used_memory`` before and after. The
baseline is scrapy-redis's dupefilter: one Redis set of 40-character hex SHA1
fingerprints. Also reports the memory while all N are queued, and push and
lease+ack rates. Writes bench/results/frontier.json.

    .venv/bin/python bench/frontier.py [--urls N]

It starts its own Redis (`stack.Stack`) in a temporary directory on a
free port. Target: under 100 bytes per seen URL.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import time
import uuid
from pathlib import Path

import redis
import redis.asyncio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table, start_stack, write_results  # noqa: E402
from crawler.frontier import JobFrontier  # noqa: E402
from crawler.frontier.serialize import request_to_bytes, url_member  # noqa: E402

BATCH = 1000


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


async def _frontier_figures(client: redis.Redis, redis_url: str, urls: int) -> dict[str, float]:
    """Push `urls` URLs into one job's frontier, then lease and acknowledge them all."""
    from scrapy import Request

    base = used_memory(client)
    async_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        frontier = JobFrontier(async_client, str(uuid.uuid4()))
        push_s = 0.0
        for start in range(0, urls, BATCH):
            entries = []
            for i in range(start, min(start + BATCH, urls)):
                url = f"https://site-{i % 997}.example.org/section/{i // 997}/page-{i}.html"
                entries.append((url_member(url), -(i % 5), request_to_bytes(Request(url)), True))
            t = time.perf_counter()
            await frontier.push(entries)
            push_s += time.perf_counter() - t
        queued = used_memory(client) - base
        t = time.perf_counter()
        while True:
            taken, _ = await frontier.lease(BATCH, 600_000)
            if not taken:
                break
            await frontier.ack([member for member, _ in taken])
        lease_ack_s = time.perf_counter() - t
        stats = await frontier.stats()
    finally:
        await async_client.aclose()
    assert stats["seen"] == urls and stats["queued"] == 0 and stats["leased"] == 0, stats
    done = used_memory(client) - base
    return {"seen": done / urls, "queued": queued / urls, "push_per_s": urls / push_s,
            "lease_ack_per_s": urls / lease_ack_s}


def run(client: redis.Redis, redis_url: str, urls: int) -> dict[str, float]:
    client.flushall()
    figures = asyncio.run(_frontier_figures(client, redis_url, urls))

    # Baseline: scrapy-redis's dupefilter, a set of hex SHA1 fingerprints.
    client.flushall()
    base = used_memory(client)
    pipe = client.pipeline(transaction=False)
    for i in range(urls):
        url = f"https://site-{i % 997}.example.org/section/{i // 997}/page-{i}.html"
        pipe.sadd("dupefilter", hashlib.sha1(url.encode()).hexdigest())
        if i % BATCH == BATCH - 1:
            pipe.execute()
    pipe.execute()
    baseline = used_memory(client) - base
    client.flushall()
    return {**figures, "baseline": baseline / urls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=1_000_000)
    args = parser.parse_args()
    stack, home = start_stack({"redis"})
    try:
        client = redis.Redis.from_url(stack.settings.redis_url)
        figures = run(client, stack.settings.redis_url, args.urls)
        client.close()
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    print(f"frontier: {args.urls:,} URLs")
    print_table([
        ("bytes per seen URL (done)", f"{figures['seen']:.1f}",
         f"{figures['baseline']:.1f} scrapy-redis set",
         f"{figures['seen'] / figures['baseline']:.2f}x", "< 100"),
        ("bytes per queued URL", f"{figures['queued']:.1f}", "-", "-", "-"),
        ("push URLs/s", f"{figures['push_per_s']:,.0f}", "-", "-", "-"),
        ("lease+ack URLs/s", f"{figures['lease_ack_per_s']:,.0f}", "-", "-", "-"),
    ])
    write_results("frontier", [
        {"name": "bytes_per_seen_url", "value": round(figures["seen"], 1), "unit": "bytes",
         "target": 100, "baseline": round(figures["baseline"], 1)},
        {"name": "ratio_vs_scrapy_redis_dupefilter",
         "value": round(figures["seen"] / figures["baseline"], 3), "unit": "x", "target": None},
        {"name": "bytes_per_queued_url", "value": round(figures["queued"], 1), "unit": "bytes",
         "target": None},
        {"name": "push_urls_per_s", "value": round(figures["push_per_s"]), "unit": "urls/s",
         "target": None},
        {"name": "lease_ack_urls_per_s", "value": round(figures["lease_ack_per_s"]),
         "unit": "urls/s", "target": None},
        {"name": "urls", "value": args.urls, "unit": "urls", "target": 1_000_000},
    ])


if __name__ == "__main__":
    main()
