"""Scenarios 9 and 10: 2,000 job submissions from 200 concurrent clients; a crawl of
20,000 generated pages with 4 workers. Both print their figures and write them to
bench/results/verify_load.json."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx
import psutil
import psycopg
import pytest

from tests.api_fixtures import add_user
from tests.faults.helpers import ApiProcess, RssSampler, mb, wait_for, write_load_results
from tests.faults.test_api_kill import api_env, cancel_on_scrapyd, token
from tests.test_crawl_reliability import (
    _service,
    assert_complete,
    make_job,
    page_fetches,
    schedule,
    scrapyd_jobs,
    wait_finished,
    wait_running,
)

SUBMISSIONS = 2000
CLIENTS = 200
USERS = 4  # each over its quota (30 jobs a minute) long before its 500th submission
SCRAPYD_GROWTH_LIMIT_MB = 100


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _burst(api_url: str, tokens: list[str], body: dict) -> list[tuple[int, float, str]]:
    """CLIENTS clients, each sending its share of SUBMISSIONS one after the other."""
    results: list[tuple[int, float, str]] = []
    odd: list[str] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=api_url, timeout=120, limits=limits) as client:
        async def one_client(n: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
            for _ in range(SUBMISSIONS // CLIENTS):
                started = time.perf_counter()
                response = await client.post("/api/v1/jobs", json=body, headers=headers)
                job = response.json().get("id", "") if response.status_code == 201 else ""
                if response.status_code not in (201, 429) and len(odd) < 5:
                    odd.append(f"{response.status_code} {dict(response.headers)} "
                               f"{response.text[:300]}")
                results.append((response.status_code, time.perf_counter() - started, job))

        await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
    for answer in odd:
        print(f"unexpected answer: {answer}")
    return results


@pytest.mark.slow
@pytest.mark.scenario(9, done="2,000 submissions from 200 concurrent clients (4 users) to the "
                              "API process; then cancel every created job",
                      checked="every one answered 201 or 429; every 201 recorded and known to "
                              "scrapyd; none left pending; scrapyd RSS growth < 100 MiB; p99 "
                              "printed")
def test_two_thousand_submissions_from_two_hundred_clients(
        mock_server, database_url, redis_url, scrapyd_url, test_stack, tmp_path) -> None:
    server = mock_server(pages=1)
    names = [f"load{n}" for n in range(USERS)]
    for name in names:
        add_user(database_url, name)
    env = api_env(database_url, redis_url, scrapyd_url, tmp_path)
    # The recovery's own grace period: a submission under this load takes seconds.
    del env["CRAWLGRAPH_TEST_RECOVERY_GRACE"]
    api = ApiProcess(env, tmp_path / "api.log").start()
    scrapyd_pid = _service(test_stack, "scrapyd").pid()
    try:
        tokens = [token(api.url, name) for name in names]
        body = {"start_urls": [server.url("/p/0")], "max_pages": 1, "obey_robots": False}
        with RssSampler([scrapyd_pid, api.proc.pid], interval=0.5) as rss:
            scrapyd_start = psutil.Process(scrapyd_pid).memory_info().rss
            started = time.perf_counter()
            results = asyncio.run(_burst(api.url, tokens, body))
            elapsed = time.perf_counter() - started
            created = {job for status, _, job in results if status == 201}
            # Every created job is recorded as scheduled and scrapyd knows its process.
            with psycopg.connect(database_url) as conn:
                rows = conn.execute("SELECT id, status, scrapyd_jobs FROM jobs").fetchall()
            listing = scrapyd_jobs(scrapyd_url)
            known = {j["id"] for state in ("pending", "running", "finished")
                     for j in listing[state]}
            # Then every one is cancelled through the API (pending processes never start).
            with httpx.Client(base_url=api.url, timeout=60) as client:
                owner_token = dict(zip(names, tokens, strict=True))
                with psycopg.connect(database_url) as conn:
                    owners = dict(conn.execute(
                        "SELECT j.id::text, u.username FROM jobs j JOIN users u "
                        "ON u.id = j.owner_id").fetchall())
                for job in sorted(created):
                    response = client.post(f"/api/v1/jobs/{job}/cancel", headers={
                        "Authorization": f"Bearer {owner_token[owners[job]]}"})
                    # 409: it has ended already (a one-page crawl is quick).
                    assert response.status_code in (200, 409), response.text

            def ours_alive() -> set[str]:
                live = scrapyd_jobs(scrapyd_url)
                return {j["id"] for j in live["pending"] + live["running"]
                        if j["id"].rsplit("-", 1)[0] in created}

            wait_for(lambda: not ours_alive(), 180, "the cancelled processes to stop",
                     interval=1)
        statuses = [status for status, _, _ in results]
        latencies = [seconds * 1000 for _, seconds, _ in results]
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
        p99_by_status = {status: round(_percentile([seconds * 1000 for st, seconds, _ in results
                                                    if st == status], 0.99), 1)
                         for status in counts}
        scrapyd_peak = max(r for _, r in rss.samples[scrapyd_pid])
        api_peak = max((r for _, r in rss.samples[api.proc.pid]), default=0)
        print(f"\n{SUBMISSIONS} submissions, {CLIENTS} clients: {counts} in {elapsed:.1f} s "
              f"({SUBMISSIONS / elapsed:.0f}/s); p50 {p50:.0f} ms, p99 {p99:.0f} ms "
              f"(by status {p99_by_status}); load average {os.getloadavg()[0]:.1f}; scrapyd "
              f"RSS {mb(scrapyd_start)} -> peak {mb(scrapyd_peak)} MiB; API peak "
              f"{mb(api_peak)} MiB")
        write_load_results("submissions", [
            {"name": "p99_ms", "value": round(p99, 1), "unit": "ms", "target": None},
            {"name": "p50_ms", "value": round(p50, 1), "unit": "ms", "target": None},
            *({"name": f"p99_ms_{status}", "value": value, "unit": "ms", "target": None}
              for status, value in p99_by_status.items()),
            {"name": "per_s", "value": round(SUBMISSIONS / elapsed, 1), "unit": "1/s",
             "target": None},
            {"name": "created", "value": counts.get(201, 0), "unit": "jobs", "target": None},
            {"name": "refused_429", "value": counts.get(429, 0), "unit": "answers",
             "target": None},
            {"name": "scrapyd_rss_start_mb", "value": mb(scrapyd_start), "unit": "MiB",
             "target": None},
            {"name": "scrapyd_rss_peak_mb", "value": mb(scrapyd_peak), "unit": "MiB",
             "target": mb(scrapyd_start) + SCRAPYD_GROWTH_LIMIT_MB},
            {"name": "api_rss_peak_mb", "value": mb(api_peak), "unit": "MiB", "target": None},
        ])
        assert len(results) == SUBMISSIONS
        assert set(counts) <= {201, 429}, counts
        assert counts.get(201, 0) >= USERS * 30 and counts.get(429, 0) > 0, counts
        by_id = {str(job_id): (status, entries) for job_id, status, entries in rows}
        assert created == set(by_id), "a job row without a 201, or a 201 without a row"
        for job in created:
            status, entries = by_id[job]
            assert [e["jobid"] for e in entries] == [f"{job}-0"], (job, status, entries)
            assert f"{job}-0" in known, job
        with psycopg.connect(database_url) as conn:
            left = conn.execute("SELECT status, error, count(*) FROM jobs GROUP BY 1, 2"
                                ).fetchall()
        print(f"jobs at the end: {left}")
        assert {status for status, _, _ in left} <= {"cancelled", "finished"}, left
        assert scrapyd_peak - scrapyd_start < SCRAPYD_GROWTH_LIMIT_MB * 2**20
    finally:
        api.stop()
        print(f"--- API log ---\n{api.log_tail()}")
        with psycopg.connect(database_url) as conn:
            ours = {f"{job_id}-0" for (job_id,) in conn.execute("SELECT id FROM jobs")}
        cancel_on_scrapyd(scrapyd_url, ours)


CRAWL_PAGES = 20_000
WORKERS = 4


@pytest.mark.slow
@pytest.mark.timeout(900)  # a few minutes on a busy machine; the suite's default is 300 s
@pytest.mark.scenario(10, done="crawl 20,000 generated pages with 4 workers (scrapyd)",
                      checked="every page and link stored once, each page fetched once; "
                              "pages/s and peak RSS per process printed; each worker's RSS "
                              "after warm-up grows < 40 MiB")
def test_twenty_thousand_pages_with_four_workers(mock_server, scrapyd_url, database_url,
                                                 redis_url, test_stack) -> None:
    server = mock_server(pages=CRAWL_PAGES, seed=43)
    job = make_job(database_url, workers=WORKERS)
    started = time.perf_counter()
    ids = [schedule(scrapyd_url, job, server.start_url, database_url, redis_url,
                    CRAWLGRAPH_STATS_INTERVAL=5) for _ in range(WORKERS)]
    pids = [wait_running(scrapyd_url, sj) for sj in ids]
    others = {name: _service(test_stack, name).pid() for name in ("redis", "scrapyd")}
    with RssSampler([*pids, *others.values()], interval=1.0) as rss:
        wait_finished(scrapyd_url, ids, timeout=900)
    elapsed = time.perf_counter() - started
    fetches = server.requests("/p/")
    crawl_seconds = fetches[-1].time - fetches[0].time
    rate = CRAWL_PAGES / crawl_seconds
    figures = [{"name": "pages_per_s", "value": round(rate, 1), "unit": "pages/s",
                "target": None},
               {"name": "seconds", "value": round(elapsed, 1), "unit": "s", "target": None}]
    lines = [f"\n{CRAWL_PAGES} pages, {WORKERS} workers: {rate:.0f} pages/s "
             f"({crawl_seconds:.0f} s fetching, {elapsed:.0f} s from schedule to exit)"]
    growth = {}
    for n, pid in enumerate(pids):
        samples = [r for _, r in rss.samples[pid]]
        quarter = max(1, len(samples) // 4)
        warm, late = max(samples[:quarter * 2]), max(samples[quarter * 2:] or samples)
        growth[pid] = late - warm
        lines.append(f"worker {n}: peak {mb(max(samples))} MiB, after warm-up {mb(warm)} MiB,"
                     f" last half peak {mb(late)} MiB ({len(samples)} samples)")
        figures += [{"name": f"worker{n}_peak_rss_mb", "value": mb(max(samples)), "unit": "MiB",
                     "target": None},
                    {"name": f"worker{n}_growth_after_warmup_mb", "value": mb(late - warm),
                     "unit": "MiB", "target": 40}]
    for name, pid in others.items():
        peak = rss.peak_mb(pid)
        lines.append(f"{name}: peak {peak:.0f} MiB")
        figures.append({"name": f"{name}_peak_rss_mb", "value": round(peak, 1), "unit": "MiB",
                        "target": None})
    print("\n".join(lines))
    write_load_results("crawl_20k", figures)
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}
    assert all(g < 40 * 2**20 for g in growth.values()), {p: mb(g) for p, g in growth.items()}
