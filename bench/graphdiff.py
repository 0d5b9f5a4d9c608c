"""Benchmark: the diff of two page graphs (`graphs.diff.diff_graphs`) against Python sets.

Builds two synthetic graph-tool graphs in memory (no services): `--nodes`
URLs and `--edges` random links; the second crawl drops 2 % of the nodes,
adds as many new ones and rewires 5 % of the links. Times `diff_graphs`
(labels read, node and edge sets, PageRank movers, component merges and
splits) on graphs already loaded, and, as the baseline, the same node and
edge differences written the plain way: Python sets of labels and of
(source label, target label) tuples (no movers, no components). Prints both
and writes bench/results/graphdiff.json.

    .venv/bin/python bench/graphdiff.py [--nodes 200000] [--edges 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import graph_tool as gt
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table, write_results  # noqa: E402
from graphs.diff import diff_graphs  # noqa: E402


def _graph(labels: list[str], edges: np.ndarray, rng: np.random.Generator) -> gt.Graph:
    g = gt.Graph(directed=True)
    g.add_vertex(len(labels))
    g.vp.label = g.new_vp("string", vals=labels)
    g.add_edge_list(np.unique(edges, axis=0))
    g.vp.pagerank = g.new_vp("double", vals=rng.random(len(labels)))
    return g


def _pair(n: int, m: int) -> tuple[gt.Graph, gt.Graph]:
    rng = np.random.default_rng(7)
    labels = [f"https://site{i % 97}.test/page/{i}" for i in range(n)]
    edges = rng.integers(0, n, size=(m, 2))
    a = _graph(labels, edges, rng)
    gone = rng.choice(n, size=n // 50, replace=False)
    new_labels = list(labels)
    for i in gone.tolist():
        new_labels[i] = f"https://site{i % 97}.test/new/{i}"
    rewired = edges.copy()
    moved = rng.choice(m, size=m // 20, replace=False)
    rewired[moved, 1] = rng.integers(0, n, size=len(moved))
    return a, _graph(new_labels, rewired, rng)


def _baseline(a: gt.Graph, b: gt.Graph) -> tuple[int, int, int, int]:
    la, lb = list(a.vp.label), list(b.vp.label)
    na, nb = set(la), set(lb)
    ea = {(la[s], la[t]) for s, t in a.get_edges().tolist()}
    eb = {(lb[s], lb[t]) for s, t in b.get_edges().tolist()}
    return len(nb - na), len(na - nb), len(eb - ea), len(ea - eb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=200_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    args = parser.parse_args()
    a, b = _pair(args.nodes, args.edges)
    started = time.perf_counter()
    d = diff_graphs(a, b, uuid.uuid4(), uuid.uuid4(), "page", metric="pagerank", top=20)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    counts = _baseline(a, b)
    base = time.perf_counter() - started
    assert counts == (d.nodes.added, d.nodes.removed, d.edges.added, d.edges.removed), counts
    print(f"{a.num_vertices()} nodes, {a.num_edges()} and {b.num_edges()} edges; "
          f"{d.edges.added} links added, {d.edges.removed} removed, "
          f"{d.components.merges} merges, {d.components.splits} splits")
    print_table([
        ("s_diff", f"{ours:.2f} s", f"{base:.2f} s (Python sets, no movers or components)",
         f"{ours / base:.2f}x", "-"),
    ])
    write_results("graphdiff", [
        {"name": "s_diff", "value": round(ours, 3), "unit": "s", "target": None},
        {"name": "s_diff_python_sets", "value": round(base, 3), "unit": "s", "target": None},
    ], nodes=a.num_vertices(), edges=[a.num_edges(), b.num_edges()])


if __name__ == "__main__":
    main()
