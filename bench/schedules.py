"""Benchmark: the scheduler's fire lag with 1,000 schedules due at the same second.

Starts its own PostgreSQL and Redis (`stack.Stack`, temporary directory, free
ports), 100 users with 10 schedules each (the owners' job rate limit stays on,
as deployed), and sets every schedule's next slot to the same second a few
seconds ahead. Then two scheduler loops (`run_scheduler`, as `crawlgraph
scheduler` runs it, 1 s between passes) run until every schedule has fired
that slot. The lag of a fire is its job row's `created_at` minus the slot:
p50 and p99 are printed next to the same run with one scheduler (the
baseline) and written to bench/results/schedules.json. Target: p99 under 5 s.

scrapyd is an address where nothing listens: the lag ends when the job is
stored (the claim's commit); starting the crawlers comes after it and is not
part of the figure (here every start fails at once, as it would with scrapyd
down, and each job is marked failed).

    .venv/bin/python bench/schedules.py [--schedules 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, print_table, start_stack, write_results  # noqa: E402
from core.settings import Settings  # noqa: E402
from jobapi.services.schedules_loop import run_scheduler  # noqa: E402

JOB = json.dumps({"start_urls": ["http://127.0.0.1:9/"], "max_pages": 1})


def _seed(database_url: str, count: int) -> None:
    with psycopg.connect(database_url) as conn:
        users = [conn.execute("INSERT INTO users (username, password_hash) VALUES (%s, 'x') "
                              "RETURNING id", (f"bench{i}",)).fetchone()[0]
                 for i in range(100)]
        with conn.cursor().copy("COPY schedules (id, owner_id, name, cron, timezone, anchor, "
                                "job, overlap) FROM STDIN") as copy:
            for n in range(count):
                # A yearly cron: the slot a run fires is the one set below.
                copy.write_row((uuid.uuid4(), users[n % len(users)], f"s{n}", "0 0 1 1 *",
                                "UTC", datetime.now(UTC), JOB, "queue"))


def _due_at(database_url: str, seconds_ahead: float) -> datetime:
    slot = (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).replace(microsecond=0)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE schedules SET next_fire_at = %s", (slot,))
    return slot


def _lags(database_url: str, slot: datetime) -> list[float]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT extract(epoch FROM created_at - schedule_slot)::float8 "
                            "FROM jobs WHERE schedule_slot = %s", (slot,)).fetchall()
    return sorted(r[0] for r in rows)


def _run(settings: Settings, schedulers: int, count: int) -> tuple[list[float], int]:
    slot = _due_at(settings.database_url, 4)

    async def go() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(run_scheduler(settings, poll_seconds=1.0, stop=stop))
                 for _ in range(schedulers)]
        deadline = time.monotonic() + 180
        while len(_lags(settings.database_url, slot)) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    with psycopg.connect(settings.database_url) as conn:
        twice = conn.execute("SELECT count(*) FROM (SELECT 1 FROM jobs WHERE schedule_slot = %s "
                             "GROUP BY schedule_id HAVING count(*) > 1) d",
                             (slot,)).fetchone()[0]
    return _lags(settings.database_url, slot), twice


def _p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", type=int, default=1000)
    args = parser.parse_args()
    stack, home = start_stack({"postgres", "redis"})
    try:
        settings = msgspec.structs.replace(
            stack.settings, scrapyd_urls=(f"http://127.0.0.1:{free_port()}",),
            log_level="WARNING")
        _seed(settings.database_url, args.schedules)
        one, twice_one = _run(settings, 1, args.schedules)
        two, twice_two = _run(settings, 2, args.schedules)
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    n = args.schedules
    p50, p99, base50, base99 = _p(two, 0.5), _p(two, 0.99), _p(one, 0.5), _p(one, 0.99)
    print(f"{n} schedules due at one second; fired {len(two)} (two schedulers), {len(one)} "
          f"(one); slots fired twice: {twice_two} and {twice_one}; median lag spread "
          f"{statistics.pstdev(two):.2f} s")
    print_table([
        (f"p50_s_fire_lag_{n}", f"{p50:.2f} s", f"{base50:.2f} s (one scheduler)",
         f"{p50 / base50:.2f}x" if base50 else "-", "-"),
        (f"p99_s_fire_lag_{n}", f"{p99:.2f} s", f"{base99:.2f} s (one scheduler)",
         f"{p99 / base99:.2f}x" if base99 else "-", "< 5 s"),
    ])
    write_results("schedules", [
        {"name": f"p50_s_fire_lag_{n}", "value": round(p50, 3), "unit": "s", "target": None},
        {"name": f"p99_s_fire_lag_{n}", "value": round(p99, 3), "unit": "s", "target": 5.0},
        {"name": f"p50_s_fire_lag_{n}_one_scheduler", "value": round(base50, 3), "unit": "s",
         "target": None},
        {"name": f"p99_s_fire_lag_{n}_one_scheduler", "value": round(base99, 3), "unit": "s",
         "target": None},
        {"name": "slots_fired_twice", "value": twice_one + twice_two, "unit": "slots",
         "target": 0},
    ], schedulers=[1, 2], fired=[len(one), len(two)])


if __name__ == "__main__":
    main()
