"""Scenario 7: the graph worker killed (`kill -9`) during a build."""

from __future__ import annotations

import signal

import psutil
import psycopg
import pytest

from graphs import store
from graphs.models import GraphBuildRequest
from graphs.pipeline import build_now
from tests.test_graph_worker import (
    SLOW_GRAPH,
    SLOW_PIVOTS,
    _seed_job,
    _spawn_worker,
    _status,
    _stop,
    _wait_for,
)


def _node_ranks(database_url: str, build_id) -> dict[str, float]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT label, pagerank FROM graph_nodes WHERE build_id = %s",
                            (build_id,)).fetchall()
    ranks = dict(rows)
    assert len(ranks) == len(rows), "a node was stored twice"
    return ranks


@pytest.mark.slow
@pytest.mark.scenario(7, done="kill -9 the graph worker mid-build (betweenness step), "
                              "start another",
                      checked="no process keeps the dead build alive; it is claimed again "
                              "(attempt 2) and done; nodes stored once, PageRank equal to a "
                              "clean build's")
def test_killed_graph_worker_build_is_retried_and_done(database_url, tmp_path) -> None:
    owner, job, urls, _ = _seed_job(database_url, **SLOW_GRAPH)
    request = GraphBuildRequest(metrics=["pagerank", "betweenness"],
                                betweenness_pivots=SLOW_PIVOTS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        build_id = store.create_build(conn, owner, [job], request)
    first = _spawn_worker(database_url, tmp_path)
    try:
        _wait_for(lambda: _status(database_url, build_id)["step"] == "betweenness", 120,
                  "the worker to reach the betweenness step")
        helpers = psutil.Process(first.pid).children(recursive=True)
        assert helpers, "no heartbeat helper runs beside the worker"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        _stop(first)
    # The heartbeat helper must not outlive its worker: it would keep the build "alive".
    _, alive = psutil.wait_procs(helpers, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    assert _status(database_url, build_id)["status"] == "running"
    second = _spawn_worker(database_url, tmp_path)
    try:
        _wait_for(lambda: _status(database_url, build_id)["status"] in ("done", "failed"), 300,
                  "the second worker to end the build")
    finally:
        log = _stop(second)
    build = _status(database_url, build_id)
    assert build["status"] == "done" and build["attempts"] == 2, (build, log[-2000:])
    assert build["node_count"] == len(urls)
    assert (tmp_path / build["path"]).exists()
    ranks = _node_ranks(database_url, build_id)
    assert len(ranks) == len(urls)
    clean = build_now(database_url, tmp_path, owner, [job], GraphBuildRequest(metrics=["pagerank"]))
    expected = _node_ranks(database_url, clean)
    assert ranks.keys() == expected.keys()
    assert max(abs(ranks[k] - expected[k]) for k in ranks) < 1e-9
