"""The graph build worker: durable claims, heartbeats, retries after a kill, clean stops."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from graphs import store
from graphs.models import GraphBuildRequest
from graphs.worker import Worker, WorkerConfig
from tests.graphdata import add_links, add_pages, make_job, make_user

REPO = Path(__file__).resolve().parent.parent
# Sampled betweenness on this graph takes a few seconds: long enough to stop a worker in it.
SLOW_GRAPH = {"pages": 20_000, "links_per_page": 10}
SLOW_PIVOTS = 2_000


def _seed_job(database_url: str, pages: int, links_per_page: int, seed: int = 3):
    rng = random.Random(seed)
    urls = [f"http://site.test/{i}" for i in range(pages)]
    links = {(u, rng.choice(urls)) for u in urls for _ in range(links_per_page)}
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        job = make_job(conn, owner)
        add_pages(conn, job, urls)
        add_links(conn, job, [(s, t, 1, False) for s, t in links])
    return owner, job, urls, links


def _status(database_url: str, build_id) -> dict:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return store.get_build(conn, build_id)


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def _spawn_worker(database_url: str, home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "CRAWLGRAPH_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "graph-worker", "--poll", "0.2",
         "--heartbeat", "0.3", "--stale-after", "2", *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _stop(proc: subprocess.Popen) -> str:
    """Stop a worker (SIGTERM, then SIGKILL after 30 s) and return its log."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
    return out


def test_a_queued_build_is_built_and_stored(database_url, tmp_path):
    owner, job, urls, links = _seed_job(database_url, pages=300, links_per_page=5)
    with psycopg.connect(database_url, autocommit=True) as conn:
        build_id = store.create_build(conn, owner, [job], GraphBuildRequest())
    done = Worker(database_url, tmp_path, WorkerConfig(poll_seconds=0.1)).run(once=True)
    assert done == 1
    build = _status(database_url, build_id)
    assert build["status"] == "done" and build["attempts"] == 1
    assert (build["node_count"], build["edge_count"]) == (
        len(urls), len({(s, t) for s, t in links if s != t}))
    assert (tmp_path / build["path"]).exists()
    assert {"read", "build", "metric.pagerank", "store_nodes"} <= set(build["timings"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        top = store.top_nodes(conn, build, "pagerank", "desc", 20)
        count = conn.execute("SELECT count(*) FROM graph_nodes WHERE build_id = %s",
                             (build_id,)).fetchone()[0]
    assert count == len(urls)
    ranks = [row["pagerank"] for row in top]
    assert len(top) == 20 and ranks == sorted(ranks, reverse=True)
    g = store.load_graph(tmp_path, build)
    best = max(range(g.num_vertices()), key=lambda v: g.vp.pagerank.a[v])
    assert top[0]["label"] == g.vp.label[best]


def test_skip_locked_gives_two_workers_two_builds(database_url):
    owner, job, _, _ = _seed_job(database_url, pages=10, links_per_page=2)
    with psycopg.connect(database_url, autocommit=True) as a, \
            psycopg.connect(database_url, autocommit=True) as b:
        first = store.create_build(a, owner, [job], GraphBuildRequest())
        second = store.create_build(a, owner, [job], GraphBuildRequest())
        with a.transaction():
            # Worker A is mid-claim of the oldest build and holds its row lock.
            a.execute("SELECT id FROM graph_builds WHERE id = %s FOR UPDATE", (first,))
            claimed = store.claim(b, "worker-b", stale_after=60)
        assert claimed is not None and claimed.id == second
        assert store.claim(b, "worker-b", stale_after=60).id == first
        assert store.claim(b, "worker-b", stale_after=60) is None


def test_killed_worker_build_is_retried_and_finishes(database_url, tmp_path):
    owner, job, urls, _ = _seed_job(database_url, **SLOW_GRAPH)
    request = GraphBuildRequest(metrics=["pagerank", "betweenness", "components"],
                                betweenness_pivots=SLOW_PIVOTS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        build_id = store.create_build(conn, owner, [job], request)
    first = _spawn_worker(database_url, tmp_path)
    try:
        _wait_for(lambda: _status(database_url, build_id)["step"] == "betweenness", 60,
                  "the first worker to reach the betweenness step")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        _stop(first)
    killed = _status(database_url, build_id)
    assert killed["status"] == "running" and killed["attempts"] == 1
    second = _spawn_worker(database_url, tmp_path)
    try:
        _wait_for(lambda: _status(database_url, build_id)["status"] == "done", 240,
                  "the second worker to finish the build")
    finally:
        log = _stop(second)
    build = _status(database_url, build_id)
    assert build["attempts"] == 2 and build["node_count"] == len(urls)
    assert f"build {build_id} claimed: level=page attempt 2/3" in log
    assert f"build {build_id} done" in log


def test_stale_build_without_attempts_left_fails(database_url, tmp_path):
    owner, job, _, _ = _seed_job(database_url, pages=5, links_per_page=1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        build_id = store.create_build(conn, owner, [job], GraphBuildRequest())
        conn.execute("UPDATE graph_builds SET status = 'running', attempts = 3, "
                     "heartbeat_at = now() - interval '1 hour' WHERE id = %s", (build_id,))
    assert Worker(database_url, tmp_path, WorkerConfig(stale_after=60)).run(once=True) == 0
    build = _status(database_url, build_id)
    assert build["status"] == "failed" and "interrupted 3 times" in build["error"]


def test_sigterm_mid_build_requeues_and_exits(database_url, tmp_path):
    owner, job, _, _ = _seed_job(database_url, **SLOW_GRAPH)
    request = GraphBuildRequest(metrics=["betweenness", "pagerank"],
                                betweenness_pivots=SLOW_PIVOTS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        build_id = store.create_build(conn, owner, [job], request)
    worker = _spawn_worker(database_url, tmp_path)
    try:
        _wait_for(lambda: _status(database_url, build_id)["step"] == "betweenness", 60,
                  "the worker to reach the betweenness step")
        worker.send_signal(signal.SIGTERM)
        # It stops at the next step boundary; on a busy machine a step can take a while.
        assert worker.wait(timeout=240) == 0
    finally:
        log = _stop(worker)
    build = _status(database_url, build_id)
    assert build["status"] == "queued" and build["attempts"] == 0, log
    assert f"build {build_id} requeued: The worker was asked to stop." in log


def _read_until(proc: subprocess.Popen, text: str, seconds: float) -> str:
    """Read the worker's output until `text` appears (AssertionError after `seconds`)."""
    fd = proc.stdout.fileno()
    out = b""
    deadline = time.monotonic() + seconds
    while text.encode() not in out:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"no {text!r} in the worker's output: {out!r}"
        if select.select([fd], [], [], min(left, 0.5))[0]:
            out += os.read(fd, 65536)
    return out.decode(errors="replace")


def test_idle_worker_stops_on_sigterm(database_url, tmp_path):
    worker = _spawn_worker(database_url, tmp_path)
    started = ""
    try:
        # "started" is logged once the signal handlers are installed: a SIGTERM sent
        # before (a slow start on a busy machine) would kill it with status -15.
        started = _read_until(worker, "started", 60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
    finally:
        log = started + _stop(worker)
    assert "stopped" in log


@pytest.mark.parametrize("metrics", [["pagerank", "nope"]])
def test_create_build_refuses_unknown_metric(database_url, metrics):
    from graphs.errors import InvalidGraphRequest

    owner, job, _, _ = _seed_job(database_url, pages=3, links_per_page=1)
    with psycopg.connect(database_url, autocommit=True) as conn, \
            pytest.raises(InvalidGraphRequest):
        store.create_build(conn, owner, [job], GraphBuildRequest(metrics=metrics))


def test_worker_waits_for_an_unreachable_database(tmp_path, caplog):
    import logging
    import socket
    import threading

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    caplog.set_level(logging.INFO, logger="crawlgraph.graph_worker")
    worker = Worker(f"postgresql://nobody:x@127.0.0.1:{port}/none?connect_timeout=2", tmp_path)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: "database unavailable" in caplog.text, 20, "a retry message")
    finally:
        worker.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert "stopped" in caplog.text
