"""Run one claimed build: read, build, metrics, save, store nodes.

`run_claimed` is what the worker calls for each build it claims;
`build_now` records a build and runs it in the calling process (the CLI's
`--inline`, `make crawl` and tests), with the same rows and files as a build
done by the worker.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from graphs import store
from graphs.build import BuildOptions, build_graph
from graphs.metrics import compute_metrics
from graphs.models import GraphBuildRequest
from graphs.read import read_links

StepHook = Callable[[str], None]


def _options(claim: store.Claim) -> BuildOptions:
    opts = claim.options
    return BuildOptions(
        level=claim.level,
        include_uncrawled=bool(opts.get("include_uncrawled", True)),
        self_loops=bool(opts.get("self_loops", False)),
        nofollow=bool(opts.get("nofollow", True)),
        fold_redirects=bool(opts.get("fold_redirects", True)),
        fold_canonical=bool(opts.get("fold_canonical", False)),
    )


def run_claimed(
    conn: psycopg.Connection,
    conninfo: str,
    home: Path,
    claim: store.Claim,
    on_step: StepHook | None = None,
) -> dict[str, Any]:
    """Build a claimed graph and store it; return {nodes, edges, timings, summary, stored}.

    `on_step(name)` is called before each step; it may raise to abandon the
    build (the worker raises `BuildInterrupted` when it is asked to stop).
    """
    step = on_step or (lambda name: None)
    timings: dict[str, float] = {}

    def timed(name: str, func: Callable[[], Any]) -> Any:
        step(name)
        started = time.perf_counter()
        result = func()
        timings[name] = round(time.perf_counter() - started, 6)
        return result

    jobs = store.build_jobs(conn, claim.id)
    table = timed("read", lambda: read_links(conninfo, jobs))
    timings.update({f"read.{k}": round(v, 6) for k, v in table.timings.items()})
    options = _options(claim)
    g = timed("build", lambda: build_graph(table, options))
    links_read, redirects_read = table.link_count, table.redirect_count
    canonicals_read = table.canonical_count
    table = None  # the link arrays are the largest thing in memory; free them for the metrics
    summary, metric_times = compute_metrics(g, claim.metrics, claim.options, on_step=step)
    summary["links_read"] = links_read
    # Nodes with a fetched page; the rest were only linked to (offsite, not yet crawled).
    summary["crawled_nodes"] = int((g.vp.crawled.a > 0).sum())
    summary["redirects_read"] = redirects_read
    summary["canonicals_read"] = canonicals_read
    timings.update({f"metric.{k}": round(v, 6) for k, v in metric_times.items()})
    path = timed("save", lambda: store.save_graph(home, claim.id, g))
    step("store_nodes")
    stored = store.finish(conn, claim, g, path, timings, summary)
    return {"nodes": g.num_vertices(), "edges": g.num_edges(), "timings": timings,
            "summary": summary, "stored": stored, "graph": g}


def build_now(
    conninfo: str,
    home: Path,
    owner_id: int,
    job_ids: Sequence[uuid.UUID],
    request: GraphBuildRequest,
) -> uuid.UUID:
    """Record a build and run it here, now; return its id (done, or failed with the error)."""
    request.validate()
    worker = f"inline:{socket.gethostname()}:{os.getpid()}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        build_id = store.create_build(conn, owner_id, job_ids, request, running_as=worker)
        claim = store.Claim(id=build_id, attempt=1, max_attempts=1, level=request.level,
                            metrics=list(request.metrics), options=request.options())
        try:
            run_claimed(conn, conninfo, home, claim)
        except Exception as exc:
            store.fail(conn, claim, f"{type(exc).__name__}: {exc}", {})
            raise
    return build_id
