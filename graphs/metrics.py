"""Node and graph metrics of a built graph, each chosen by name (see `models.METRICS`).

`compute_metrics(g, names, params)` stores every node metric in `g.vp` under
its `graph_nodes` column name and returns the graph-level figures and the
time each metric took. PageRank and HITS use the edge weights (link counts).

Bounds that keep a build finite on large graphs:

* betweenness is exact up to `EXACT_BETWEENNESS_MAX_NODES` nodes, else sampled
  from `betweenness_pivots` (default `DEFAULT_PIVOTS`) random source vertices,
  seeded, and the summary says how many;
* harmonic closeness is a BFS from every node, so it is skipped above
  `CLOSENESS_MAX_NODES` nodes, with the reason in the summary;
* communities (a stochastic block model fit, `graphs.sbm`) run in a child
  process that is killed after `communities_seconds`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import graph_tool as gt
import graph_tool.centrality as gtc
import graph_tool.topology as gtt
import numpy as np

from graphs.models import METRICS

EXACT_BETWEENNESS_MAX_NODES = 5_000
DEFAULT_PIVOTS = 500
CLOSENESS_MAX_NODES = 50_000
PAGERANK_EPSILON = 1e-10
SEED = 42
# The child process that fits the block model (a module run with `python -m`).
SBM_MODULE = "graphs.sbm"

Summary = dict[str, Any]


def _weights(g: gt.Graph) -> gt.EdgePropertyMap:
    weight = g.new_ep("double")
    weight.a = g.ep.weight.a
    return weight


def _degree(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    g.vp.in_degree = g.new_vp("int32_t", vals=g.get_in_degrees(g.get_vertices()))
    g.vp.out_degree = g.new_vp("int32_t", vals=g.get_out_degrees(g.get_vertices()))
    w = g.ep.weight
    g.vp.in_weight = g.new_vp("int64_t", vals=g.get_in_degrees(g.get_vertices(), eweight=w))
    g.vp.out_weight = g.new_vp("int64_t", vals=g.get_out_degrees(g.get_vertices(), eweight=w))


def _pagerank(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    rank, iterations = gtc.pagerank(
        g, damping=params["damping"], weight=_weights(g), epsilon=PAGERANK_EPSILON,
        max_iter=10_000, ret_iter=True,
    )
    g.vp.pagerank = rank
    summary["pagerank"] = {"damping": params["damping"], "iterations": int(iterations),
                           "weighted": True, "dangling": "uniform"}


def _hits(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    if g.num_edges() == 0:
        g.vp.authority = g.new_vp("double")
        g.vp.hub = g.new_vp("double")
        return
    eig, authority, hub = gtc.hits(g, weight=_weights(g), epsilon=1e-9, max_iter=10_000)
    g.vp.authority, g.vp.hub = authority, hub
    summary["hits"] = {"eigenvalue": float(eig)}


def _betweenness(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    n = g.num_vertices()
    pivots = params.get("betweenness_pivots")
    if pivots is None and n <= EXACT_BETWEENNESS_MAX_NODES:
        pivots = None
    elif pivots is None:
        pivots = DEFAULT_PIVOTS
    if pivots is not None and pivots >= n:
        pivots = None
    chosen = None
    if pivots is not None:
        chosen = np.random.default_rng(SEED).choice(n, size=pivots, replace=False)
    g.vp.betweenness = gtc.betweenness(g, pivots=chosen)[0]
    summary["betweenness"] = {"exact": chosen is None, "pivots": n if chosen is None else pivots}


def _closeness(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    n = g.num_vertices()
    if n > CLOSENESS_MAX_NODES:
        summary.setdefault("skipped", {})["closeness"] = (
            f"{n} nodes is more than {CLOSENESS_MAX_NODES}: harmonic closeness needs a BFS "
            "from every node; build at the host or domain level instead"
        )
        return
    closeness = gtc.closeness(g, harmonic=True)
    # Harmonic closeness of an isolated vertex is 0, never NaN.
    closeness.a = np.nan_to_num(closeness.a, nan=0.0)
    g.vp.closeness = closeness
    summary["closeness"] = {"harmonic": True, "normalized": True}


def _components(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    weak, weak_sizes = gtt.label_components(g, directed=False)
    strong, strong_sizes = gtt.label_components(g, directed=True)
    g.vp.component = weak
    g.vp.strong_component = strong
    summary["components"] = {
        "weak": len(weak_sizes),
        "largest_weak": int(weak_sizes.max()) if len(weak_sizes) else 0,
        "strong": len(strong_sizes),
        "largest_strong": int(strong_sizes.max()) if len(strong_sizes) else 0,
    }


def _kcore(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    # Total (in + out) degree, as graph-tool does for directed graphs.
    g.vp.kcore = gtt.kcore_decomposition(g)
    summary["kcore"] = {"max": int(g.vp.kcore.a.max()) if g.num_vertices() else 0,
                        "degree": "total"}


def _reciprocity(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    summary["reciprocity"] = float(gtt.edge_reciprocity(g)) if g.num_edges() else 0.0


def _density(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    n = g.num_vertices()
    summary["density"] = g.num_edges() / (n * (n - 1)) if n > 1 else 0.0


def _communities(g: gt.Graph, params: dict[str, Any], summary: Summary) -> None:
    seconds = float(params.get("communities_seconds", 60.0))
    blocks, reason = fit_blocks(g, seconds)
    if blocks is None:
        summary.setdefault("skipped", {})["communities"] = reason
        return
    # Renumber blocks 0..k-1 so that the ids are small and dense.
    _, dense = np.unique(blocks, return_inverse=True)
    g.vp.community = g.new_vp("int32_t", vals=dense.ravel())
    summary["communities"] = {"model": "stochastic block model (minimize_blockmodel_dl)",
                              "count": int(dense.max()) + 1 if len(dense) else 0}


def fit_blocks(g: gt.Graph, seconds: float) -> tuple[np.ndarray | None, str]:
    """Fit an SBM in a child process killed after `seconds`; return (blocks or None, reason)."""
    if g.num_vertices() == 0:
        return np.empty(0, dtype=np.int64), ""
    with tempfile.TemporaryDirectory(prefix="crawlgraph-sbm-") as tmp:
        graph_path = os.path.join(tmp, "graph.gt")
        out_path = os.path.join(tmp, "blocks.npy")
        plain = gt.Graph(g, prune=True)
        for name in list(plain.vp.keys()):
            del plain.vp[name]
        plain.save(graph_path)
        try:
            done = subprocess.run(
                [sys.executable, "-m", SBM_MODULE, graph_path, out_path, str(SEED)],
                timeout=seconds, capture_output=True, text=True, check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"the block model did not converge within {seconds:g} s"
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return None, f"the block model fit failed: {tail[0]}"
        return np.load(out_path), ""


_COMPUTE: dict[str, Callable[[gt.Graph, dict[str, Any], Summary], None]] = {
    "degree": _degree,
    "pagerank": _pagerank,
    "hits": _hits,
    "betweenness": _betweenness,
    "closeness": _closeness,
    "components": _components,
    "kcore": _kcore,
    "communities": _communities,
    "reciprocity": _reciprocity,
    "density": _density,
}


def compute_metrics(
    g: gt.Graph,
    names: Sequence[str],
    params: dict[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[Summary, dict[str, float]]:
    """Compute the named metrics on `g`; return (graph-level summary, seconds per metric)."""
    params = {"damping": 0.85, **(params or {})}
    summary: Summary = {}
    timings: dict[str, float] = {}
    for name in names:
        if on_step is not None:
            on_step(name)
        started = time.perf_counter()
        if g.num_vertices() == 0:
            # Nothing to rank in an empty graph (graph-tool divides by the node count).
            for column in METRICS[name]:
                g.vp[column] = g.new_vp("double")
        else:
            _COMPUTE[name](g, params, summary)
        timings[name] = time.perf_counter() - started
    return summary, timings
