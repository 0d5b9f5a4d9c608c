"""Benchmark: the job API under load, against a hello-world route of the same server.

Starts its own PostgreSQL and Redis (`stack.Stack`, temporary directory,
free ports), a user with 200 running jobs, and the API in a uvicorn process
(one worker, rate limits off, logging as deployed). This process is the load
generator: closed-loop keep-alive HTTP/1.1 connections on raw asyncio streams
(cheaper per request than an HTTP client library), at 100 and 500 concurrent
connections, on

- `GET /bench/hello` (no auth, no I/O: the baseline),
- `GET /api/v1/jobs/{id}` (auth, one query, live frontier counters from Redis),
- `GET /api/v1/jobs?limit=50` (auth, one query, 50 jobs serialized),
- `POST /api/v1/auth/token` (bcrypt cost 12 by design: tens of ms of CPU each).

The scenarios take turns for `--rounds` rounds and each figure is the median
run's. Prints requests/s, p50 and p99 for each, and the reads' rate against hello
world; writes bench/results/api.json. Targets: p99 under 50 ms at 100
connections for the reads, and reads at 0.5x or more of the hello-world rate.

    .venv/bin/python bench/api.py [--seconds 3] [--rounds 3] [--connections 100,500]

The client shares the machine with the server: on a small machine the figures
are a floor for the server, and the hello-world rate is partly the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, start_stack, write_results  # noqa: E402
from jobapi.users import hash_password  # noqa: E402
from stack import Stack  # noqa: E402

PASSWORD = "bench-password-1"
READ_P99_TARGET_MS = 50.0
RATIO_TARGET = 0.5


def bench_app():
    """uvicorn factory: the API from the environment, no rate limits, plus a hello-world route."""
    from litestar import get

    from core.settings import Settings
    from jobapi.app import create_app
    from jobapi.ratelimit import RateLimits

    @get("/bench/hello", opt={"exclude_from_auth": True}, sync_to_thread=False,
         operation_id="benchHello", include_in_schema=False)
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    return create_app(Settings.from_env(), rate_limits=RateLimits.unlimited(),
                      extra_route_handlers=[hello])




# --- the load generator ------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(port: int, request: bytes, stop_at: float, latencies: list[float],
                      statuses: dict[int, int], record_from: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                break
            writer.write(request)
            status = await _read_response(reader)
            done = time.perf_counter()
            if started >= record_from:
                latencies.append(done - started)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def load(port: int, request: bytes, connections: int, seconds: float,
               warmup: float) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    record_from, stop_at = start + warmup, start + warmup + seconds
    tasks = [asyncio.create_task(_connection(port, request, stop_at, latencies, statuses,
                                             record_from)) for _ in range(connections)]
    # bcrypt-bound routes answer slowly: give in-flight requests time, then stop.
    done, pending = await asyncio.wait(tasks, timeout=warmup + seconds + 10)
    for task in pending:
        task.cancel()
    errors = [t.exception() for t in done if t.exception() is not None]
    elapsed = min(time.perf_counter(), stop_at + 10) - record_from
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 \
            if latencies else float("nan")

    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {"rps": len(latencies) / max(elapsed, 1e-9), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "requests": len(latencies), "non_2xx": len(latencies) - ok,
            "connection_errors": len(errors) + len(pending)}


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate (its latencies come with it)."""
    return sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]


def _request(method: str, path: str, token: str | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- setup ---------------------------------------------------------------------------------


def seed(database_url: str, jobs: int = 200) -> str:
    with psycopg.connect(database_url) as conn:
        user_id = conn.execute(
            "INSERT INTO users (username, password_hash) VALUES ('bench', %s) RETURNING id",
            (hash_password(PASSWORD),)).fetchone()[0]
        ids = [uuid.uuid4() for _ in range(jobs)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO jobs (id, owner_id, spider, status, params, stats, tags) "
                "VALUES (%s, %s, 'site', 'running', %s, %s, %s)",
                [(i, user_id, json.dumps({"start_urls": ["https://example.org/"],
                                          "max_pages": 1000}),
                  json.dumps({"pages": 123, "items": 4, "errors": 1, "pages_per_s": 2.5}),
                  ["bench"]) for i in ids])
    return str(ids[-1])


def start_api(stack: Stack, home: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ)
    env.update(CRAWLGRAPH_HOME=str(home), DATABASE_URL=stack.settings.database_url,
               REDIS_URL=stack.settings.redis_url, SCRAPYD_URLS=f"http://127.0.0.1:{free_port()}")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.api:bench_app", "--host",
         "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
         "--backlog", "2048"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/bench/hello", timeout=2).status_code == 200:
                return server, port
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the API did not start")


# --- main ---------------------------------------------------------------------------------




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", default="100,500")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]

    stack, home = start_stack({"postgres", "redis"}, allow_private=False)
    server = None
    try:
        job_id = seed(stack.settings.database_url)
        server, port = start_api(stack, home)
        token = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                           json={"username": "bench", "password": PASSWORD}).json()["access_token"]
        login = json.dumps({"username": "bench", "password": PASSWORD}).encode()
        scenarios = {
            "hello_world": _request("GET", "/bench/hello"),
            "get_job": _request("GET", f"/api/v1/jobs/{job_id}", token),
            "list_jobs_50": _request("GET", "/api/v1/jobs?limit=50", token),
            "post_token": _request("POST", "/api/v1/auth/token", body=login),
        }
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        # The reads and their baseline take turns, round after round, so that each
        # ratio compares runs made moments apart (other work on the machine comes
        # and goes); each figure is the median run's. Logins last: bcrypt leaves a
        # queue of hashing behind that would slow what follows.
        order = [(n, c) for _ in range(args.rounds) for c in levels
                 for n in scenarios if n != "post_token"]
        order += [("post_token", c) for c in levels]
        for name, connections in order:
            # bcrypt answers a few logins per second: a short run says all there is.
            # Every connection's first login waits behind the others' hashing: no warm-up,
            # or nothing would be recorded.
            token = name == "post_token"
            seconds = min(args.seconds, 3.0) if token else args.seconds
            runs.setdefault((name, connections), []).append(asyncio.run(
                load(port, scenarios[name], connections, seconds,
                     0.0 if token else args.warmup)))
        measured = {key: _median_run(found) for key, found in runs.items()}
        measured = {(n, c): measured[(n, c)] for c in levels for n in scenarios}
    finally:
        try:
            if server is not None:
                server.terminate()
                try:
                    server.wait(timeout=5)
                except subprocess.TimeoutExpired:  # still hashing queued logins
                    server.kill()
                    server.wait()
        finally:
            stack.down()
            shutil.rmtree(home, ignore_errors=True)

    results = []
    print(f"{'route':<14} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'vs hello':>8} {'non-2xx':>7}  target")
    for (name, connections), m in measured.items():
        hello = measured[("hello_world", connections)]["rps"]
        ratio = m["rps"] / hello if hello else float("nan")
        read = name in ("get_job", "list_jobs_50")
        target = (f"p99 < {READ_P99_TARGET_MS:g} ms, >= {RATIO_TARGET}x hello"
                  if read and connections == 100 else "")
        print(f"{name:<14} {connections:>5} {m['rps']:>9.0f} {m['p50_ms']:>8.1f} "
              f"{m['p99_ms']:>8.1f} {ratio:>8.2f} {int(m['non_2xx']):>7}  {target}")
        results += [
            {"name": f"rps_{name}_{connections}", "value": round(m["rps"], 1), "unit": "req/s",
             "target": None, "baseline": round(hello, 1)},
            {"name": f"p50_ms_{name}_{connections}", "value": round(m["p50_ms"], 2),
             "unit": "ms", "target": None},
            {"name": f"p99_ms_{name}_{connections}", "value": round(m["p99_ms"], 2),
             "unit": "ms", "target": READ_P99_TARGET_MS if read and connections == 100
             else None},
        ]
        if m["non_2xx"] or m["connection_errors"]:
            results.append({"name": f"failures_{name}_{connections}",
                            "value": int(m["non_2xx"] + m["connection_errors"]),
                            "unit": "requests", "target": 0})
    get_job = measured.get(("get_job", 100)) or measured[("get_job", levels[0])]
    hello = measured.get(("hello_world", 100)) or measured[("hello_world", levels[0])]
    list_jobs = measured.get(("list_jobs_50", 100)) or measured[("list_jobs_50", levels[0])]
    key = [
        {"name": "p99_ms_get_job_100", "value": round(get_job["p99_ms"], 2), "unit": "ms",
         "target": READ_P99_TARGET_MS},
        {"name": "ratio_vs_hello_world", "value": round(get_job["rps"] / hello["rps"], 3),
         "unit": "x", "target": RATIO_TARGET, "baseline": round(hello["rps"], 1)},
        {"name": "ratio_list_jobs_50_vs_hello_world",
         "value": round(list_jobs["rps"] / hello["rps"], 3), "unit": "x",
         "target": RATIO_TARGET},
    ]
    print(f"\np99_ms_get_job_100 = {key[0]['value']} ms (target < {READ_P99_TARGET_MS:g}); "
          f"ratio_vs_hello_world = {key[1]['value']} (target >= {RATIO_TARGET}); "
          f"list_jobs_50 vs hello = {key[2]['value']}")
    write_results("api", key + results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
