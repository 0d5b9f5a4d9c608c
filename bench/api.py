"""Benchmark: the job API under load, against a hello-world route of the same server.

Starts its own PostgreSQL and Redis (`stack.Stack`, temporary directory,
free ports), a user with 200 running jobs, and the API as the stack serves it
(`stack.api.server_command`: uvicorn, rate limits off, logging as deployed),
first with one server process, then with two (`--workers 1,2`). This process
is the load generator: closed-loop keep-alive HTTP/1.1 connections on raw
asyncio streams (cheaper per request than an HTTP client library), at 100 and
500 concurrent connections, on

- `GET /bench/hello` (no auth, no I/O: the baseline),
- `GET /api/v1/jobs/{id}` (auth, one query, live frontier counters from Redis),
- `GET /api/v1/jobs?limit=50` (auth, one query, 50 jobs serialized),
- `POST /api/v1/auth/token` (bcrypt cost 12 by design: tens of ms of CPU each;
  with the first server only).

The scenarios take turns for `--rounds` rounds and each figure is the median
run's. Prints requests/s, p50 and p99 for each, the reads' rate against hello
world, and the server's CPU per request (the CPU time of its processes over the
answers of a run, warm-up included; the median of the rounds), for each server;
writes bench/results/api.json (the two-process figures end in `_2_workers`).
Targets, at 100 connections: `GET /jobs/{id}` at 0.5x or more of the hello-world
rate with p99 under 30 ms, the listing's p99 under 50 ms.

    .venv/bin/python bench/api.py [--seconds 3] [--rounds 3] [--connections 100,500]
                                  [--workers 1,2]

The client shares the machine with the server: on a small machine the figures
are a floor for the server, and the hello-world rate is partly the client's. On
a machine other work shares, rates and latencies move by half from run to run;
the CPU per request moves least, and the ratios of runs made moments apart
next.

Where one server process spends its time (py-spy, GIL held, 100 connections,
on a busy 2-core machine; share of the samples in each function and what it
calls, about 1,000 samples a column: a point or two is noise):

    GET /api/v1/jobs/{id}                            before   after
      handler: one query and the job from its row      24 %    31 %
        the query (execute and fetch, psycopg)         15 %    17 %
        taking and returning a pool connection          9 %     5 %
      encoding the answer (Litestar, msgspec)           1 %     1 %
      sending it (uvicorn: two socket writes)          21 %    20 %
      reading and parsing the request (uvicorn)         7 %     5 %
      the access log line                               5 %     4 %
      auth (cached token and user)                      4 %     3 %

    GET /api/v1/jobs?limit=50                        before   after
      handler                                          43 %    46 %
        the query (execute and fetch, binary rows)     25 %    30 %
        taking and returning a pool connection          6 %     2 %
        rows to Job structs (documents kept as text)   11 %    10 %
      encoding the answer                               3 %     7 %
      sending it                                       20 %    14 %

Server CPU per request, the old code and the new served side by side and
loaded in turns (5 rounds, one process, busy machine): hello world 265 -> 241
us, `GET /jobs/{id}` 816 -> 715 us, the listing 1,459 -> 1,326 us.

Before: every request took its connection from psycopg_pool and gave it back
(a lock, a reset check and a wake-up each way, a third of the query's own cost);
now the pool (`jobapi.services.loops.QueuedPool`) keeps a connection given back
idle and hands it to the next request. The access line is made without
logging's search for its caller, and the time of each second is formatted once.
What is left is psycopg's round trip (about 80 us of CPU per query), uvicorn's
two writes per answer and Litestar's request handling; the token and the user
are cached (the user for 5 s, `jobapi.auth.UserCache`), and the frontier
counters for a second. psycopg prepares each query after its default
`prepare_threshold` (5 runs on a connection): kept connections reach it at once.

Tried and left: granian (2.8, ASGI, one and two processes, beside uvicorn on
the same stack, in turns): the same CPU per request within the noise (hello
world 267 against 270 us, `GET /jobs/{id}` 865 against 786, the listing 1,211
against 1,233; with two processes 272/261, 834/893, 1,347/1,335); its
`--runtime-mode st` no better, `--task-impl rust` breaks Litestar's threads.
uvicorn runs on uvloop and httptools (both installed: its `auto` picks them).
The listing's rows as JSON from PostgreSQL (`json_build_object`, the bytes
passed through): 120 us less Python per page of 50, 290 us more PostgreSQL on
the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, machine, start_stack, write_results  # noqa: E402
from jobapi.users import hash_password  # noqa: E402
from stack import Stack  # noqa: E402
from stack.api import server_command  # noqa: E402

PASSWORD = "bench-password-1"
P99_TARGETS_MS = {"get_job": 30.0, "list_jobs_50": 50.0}  # at 100 connections
RATIO_TARGET = 0.5  # GET job against hello world


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
                      statuses: dict[int, int], record_from: float, answered: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                break
            writer.write(request)
            status = await _read_response(reader)
            done = time.perf_counter()
            answered[0] += 1
            if started >= record_from:
                latencies.append(done - started)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def load(port: int, request: bytes, connections: int, seconds: float,
               warmup: float, server_cpu: Callable[[], float] = lambda: 0.0) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answered = [0]
    cpu_before = server_cpu()
    start = time.perf_counter()
    record_from, stop_at = start + warmup, start + warmup + seconds
    tasks = [asyncio.create_task(_connection(port, request, stop_at, latencies, statuses,
                                             record_from, answered))
             for _ in range(connections)]
    # bcrypt-bound routes answer slowly: give in-flight requests time, then stop.
    done, pending = await asyncio.wait(tasks, timeout=warmup + seconds + 10)
    for task in pending:
        task.cancel()
    cpu = server_cpu() - cpu_before
    errors = [t.exception() for t in done if t.exception() is not None]
    elapsed = min(time.perf_counter(), stop_at + 10) - record_from
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 \
            if latencies else float("nan")

    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {"rps": len(latencies) / max(elapsed, 1e-9), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "requests": len(latencies), "non_2xx": len(latencies) - ok,
            "connection_errors": len(errors) + len(pending),
            "cpu_us": cpu / answered[0] * 1e6 if answered[0] else float("nan")}


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate (its latencies come with it), with the median of the
    runs' server CPU per request."""
    median = dict(sorted(runs, key=lambda run: run["rps"])[len(runs) // 2])
    median["cpu_us"] = sorted((run["cpu_us"] for run in runs),  # nan (none answered) last
                              key=lambda cpu: (cpu != cpu, cpu))[len(runs) // 2]
    return median


def server_cpu(server: subprocess.Popen) -> Callable[[], float]:
    """The CPU seconds the server and its worker processes have used so far."""
    def used() -> float:
        total = 0.0
        parent = psutil.Process(server.pid)
        for proc in [parent, *parent.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:  # a process that just ended
                continue
            total += times.user + times.system
        return total

    return used


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


def start_api(stack: Stack, home: Path, workers: int) -> tuple[subprocess.Popen, int]:
    """The bench app served as the stack serves the API (`stack.api.server_command`)."""
    port = free_port()
    env = dict(os.environ)
    env.update(CRAWLGRAPH_HOME=str(home), DATABASE_URL=stack.settings.database_url,
               REDIS_URL=stack.settings.redis_url, SCRAPYD_URLS=f"http://127.0.0.1:{free_port()}")
    server = subprocess.Popen(
        [*server_command("bench.api:bench_app", "127.0.0.1", port, workers), "--backlog", "2048"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/bench/hello", timeout=2).status_code == 200:
                return server, port
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_api(server)
    raise SystemExit("the API did not start")


def stop_api(server: subprocess.Popen) -> None:
    """Stop the server and its worker processes (still hashing queued logins: killed)."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


# --- main ---------------------------------------------------------------------------------




def measure(port: int, scenarios: dict[str, bytes], levels: list[int],
            args: argparse.Namespace, cpu: Callable[[], float]
            ) -> dict[tuple[str, int], dict[str, float]]:
    """Each scenario at each level, the median of `args.rounds` runs."""
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    # The reads and their baseline take turns, round after round, so that each
    # ratio compares runs made moments apart (other work on the machine comes
    # and goes); each figure is the median run's. Logins last: bcrypt leaves a
    # queue of hashing behind that would slow what follows.
    order = [(n, c) for _ in range(args.rounds) for c in levels
             for n in scenarios if n != "post_token"]
    order += [("post_token", c) for c in levels if "post_token" in scenarios]
    for name, connections in order:
        # bcrypt answers a few logins per second: a short run says all there is.
        # Every connection's first login waits behind the others' hashing: no warm-up,
        # or nothing would be recorded.
        token = name == "post_token"
        seconds = min(args.seconds, 3.0) if token else args.seconds
        runs.setdefault((name, connections), []).append(asyncio.run(
            load(port, scenarios[name], connections, seconds, 0.0 if token else args.warmup,
                 cpu)))
    measured = {key: _median_run(found) for key, found in runs.items()}
    return {(n, c): measured[(n, c)] for c in levels for n in scenarios}


def _finite(value: float, digits: int) -> float | None:
    """A figure for the results file: None for a run with no answer (NaN is not JSON)."""
    return None if value != value else round(value, digits)


def report(measured: dict[tuple[str, int], dict[str, float]], workers: int) -> list[dict]:
    """Print one server's table; its figures for the results file (named `..._<n>_workers`
    for more than one worker)."""
    suffix = "" if workers == 1 else f"_{workers}_workers"
    print(f"\n{workers} server process{'es' if workers > 1 else ''}:")
    print(f"{'route':<14} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'vs hello':>8} {'cpu us':>7} {'non-2xx':>7}  target")
    results = []
    for (name, connections), m in measured.items():
        hello = measured[("hello_world", connections)]["rps"]
        ratio = m["rps"] / hello if hello else float("nan")
        p99_target = P99_TARGETS_MS.get(name) if connections == 100 else None
        target = "" if p99_target is None else f"p99 < {p99_target:g} ms"
        if name == "get_job" and connections == 100:
            target += f", >= {RATIO_TARGET}x hello"
        print(f"{name:<14} {connections:>5} {m['rps']:>9.0f} {m['p50_ms']:>8.1f} "
              f"{m['p99_ms']:>8.1f} {ratio:>8.2f} {m['cpu_us']:>7.0f} {int(m['non_2xx']):>7}  "
              f"{target}")
        results += [
            {"name": f"rps_{name}_{connections}{suffix}", "value": round(m["rps"], 1),
             "unit": "req/s", "target": None, "baseline": round(hello, 1)},
            {"name": f"p50_ms_{name}_{connections}{suffix}", "value": _finite(m["p50_ms"], 2),
             "unit": "ms", "target": None},
            {"name": f"p99_ms_{name}_{connections}{suffix}", "value": _finite(m["p99_ms"], 2),
             "unit": "ms", "target": p99_target},
            {"name": f"cpu_us_per_request_{name}_{connections}{suffix}",
             "value": _finite(m["cpu_us"], 1),
             "unit": "us", "target": None},
        ]
        if m["non_2xx"] or m["connection_errors"]:
            results.append({"name": f"failures_{name}_{connections}{suffix}",
                            "value": int(m["non_2xx"] + m["connection_errors"]),
                            "unit": "requests", "target": 0})
    level = 100 if ("get_job", 100) in measured else min(c for _, c in measured)
    get_job, hello = measured[("get_job", level)], measured[("hello_world", level)]
    list_jobs = measured[("list_jobs_50", level)]
    key = [
        {"name": f"ratio_vs_hello_world{suffix}", "value": round(get_job["rps"] / hello["rps"], 3),
         "unit": "x", "target": RATIO_TARGET, "baseline": round(hello["rps"], 1)},
        {"name": f"p99_ms_get_job_{level}{suffix}", "value": round(get_job["p99_ms"], 2),
         "unit": "ms", "target": P99_TARGETS_MS["get_job"]},
        {"name": f"p99_ms_list_jobs_50_{level}{suffix}", "value": round(list_jobs["p99_ms"], 2),
         "unit": "ms", "target": P99_TARGETS_MS["list_jobs_50"]},
        {"name": f"ratio_list_jobs_50_vs_hello_world{suffix}",
         "value": round(list_jobs["rps"] / hello["rps"], 3), "unit": "x", "target": None},
    ]
    print(f"ratio_vs_hello_world{suffix} = {key[0]['value']} (target >= {RATIO_TARGET}); "
          f"{key[1]['name']} = {key[1]['value']} ms (target < {key[1]['target']:g}); "
          f"{key[2]['name']} = {key[2]['value']} ms (target < {key[2]['target']:g})")
    return key + results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", default="100,500")
    parser.add_argument("--workers", default="1,2", help="server processes, one server each")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    started_on = machine()  # the load average before, beside the one after in the file
    print(started_on)

    stack, home = start_stack({"postgres", "redis"}, allow_private=False)
    key: list[dict] = []
    results: list[dict] = []
    try:
        job_id = seed(stack.settings.database_url)
        for workers in worker_counts:
            server, port = start_api(stack, home, workers)
            try:
                token = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                                   json={"username": "bench", "password": PASSWORD}
                                   ).json()["access_token"]
                login = json.dumps({"username": "bench", "password": PASSWORD}).encode()
                scenarios = {
                    "hello_world": _request("GET", "/bench/hello"),
                    "get_job": _request("GET", f"/api/v1/jobs/{job_id}", token),
                    "list_jobs_50": _request("GET", "/api/v1/jobs?limit=50", token),
                }
                if workers == worker_counts[0]:  # bcrypt's cost is the same in any server
                    scenarios["post_token"] = _request("POST", "/api/v1/auth/token", body=login)
                measured = measure(port, scenarios, levels, args, server_cpu(server))
            finally:
                stop_api(server)
            figures = report(measured, workers)
            key += figures[:4]
            results += figures[4:]
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    print(f"\n{machine()}")
    write_results("api", key + results, machine_at_start=started_on)
    return 0


if __name__ == "__main__":
    sys.exit(main())
