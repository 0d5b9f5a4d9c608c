"""A series of graph builds as one dynamic GEXF 1.3 file, for Gephi's timeline.

`iter_dynamic_gexf(graphs, crawls)` takes the builds of a series in crawl
order (the graphs may come from a generator that loads one file at a time:
only the labels, edge ids and metric arrays of each are kept) and yields the
file in chunks. The graph is `mode="dynamic"` with `timeformat="integer"`:
time `i` is the `i`-th crawl (1-based; `crawls[i - 1]` names it in the
description). A node (same label) or an edge (same source and target labels)
has one `<spell start="i" end="j"/>` per run of consecutive crawls that have
it (GEXF 1.3 intervals are closed: a node of crawl 2 only is `[2, 2]`), and
its metrics are dynamic attribute values with the crawl as their interval;
an edge's link count is the dynamic attribute `weight`. A metric is written
when every build of the series computed it.

Cost: one `np.unique` over all labels of the series and one over all edge
ids (sorting); a presence matrix of nodes x crawls and edges x crawls (bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import graph_tool as gt
import numpy as np

from graphs.exports import XML_TYPES, chunk_bounds, gexf_head, label_array, node_columns, xml_texts

MAX_CRAWLS = 1_000


def _read(graphs: Iterable[gt.Graph]) -> tuple[list[np.ndarray], list[np.ndarray],
                                               list[np.ndarray], list[dict[str, np.ndarray]],
                                               list[str], dict[str, str]]:
    labels, edges, weights, metrics, columns, types = [], [], [], [], None, {}
    for g in graphs:
        labels.append(label_array(g))
        e = g.get_edges([g.ep.weight]) if "weight" in g.ep else g.get_edges()
        edges.append(e[:, :2].astype(np.int64))
        weights.append(e[:, 2] if e.shape[1] > 2 else np.ones(len(e), np.int64))
        names = node_columns(g)
        columns = names if columns is None else [c for c in columns if c in names]
        types.update({c: XML_TYPES[g.vp[c].value_type()][0] for c in names})
        metrics.append({c: g.vp[c].a.copy() for c in names})
        if len(labels) > MAX_CRAWLS:
            raise ValueError(f"A series of more than {MAX_CRAWLS} builds is too long to export.")
    return labels, edges, weights, metrics, columns or [], types


def _spells(present: np.ndarray) -> list[str]:
    """`<spells>` of each row of a rows x crawls presence matrix (runs of True)."""
    padded = np.pad(present, ((0, 0), (1, 1)))
    step = np.diff(padded.astype(np.int8), axis=1)
    rows_s, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)  # same row order, one end per start
    out = [""] * len(present)
    runs: list[list[str]] = [[] for _ in range(len(present))]
    for r, s, e in zip(rows_s.tolist(), (starts + 1).tolist(), ends.tolist(), strict=True):
        runs[r].append(f'<spell start="{s}" end="{e}"/>')
    for r, spells in enumerate(runs):
        out[r] = "<spells>" + "".join(spells) + "</spells>"
    return out


def _attvalues(values: dict[str, np.ndarray], where: np.ndarray, ids: dict[str, int | str],
               rows: range) -> list[str]:
    """Dynamic `<attvalue>`s of `rows`: values[column][row, crawl] where the row is present."""
    out = []
    for r in rows:
        crawls = np.flatnonzero(where[r]) + 1
        parts = [f'<attvalue for="{ids[c]}" value="{v}" start="{t}" end="{t}"/>'
                 for c, table in values.items()
                 for t, v in zip(crawls.tolist(), table[r, crawls - 1].tolist(), strict=True)]
        out.append("<attvalues>" + "".join(parts) + "</attvalues>" if parts else "")
    return out


def iter_dynamic_gexf(graphs: Iterable[gt.Graph], crawls: Sequence[str],
                      description: str = "") -> Iterator[str]:
    """The series as GEXF 1.3 `mode="dynamic"`, in chunks (see the module docstring)."""
    labels, edges, weights, metrics, columns, types = _read(graphs)
    t = len(labels)
    if t != len(crawls):
        raise ValueError(f"{t} graphs but {len(crawls)} crawl names.")
    names, inverse = np.unique(np.concatenate(labels) if t else np.empty(0, object),
                               return_inverse=True)
    n = len(names)
    bounds = np.cumsum([0] + [len(x) for x in labels])
    present = np.zeros((n, t), dtype=bool)
    values = {c: np.zeros((n, t), dtype=np.float64 if types[c] == "double" else np.int64)
              for c in columns}
    keys = []
    for i in range(t):
        ids = inverse[bounds[i]:bounds[i + 1]].astype(np.int64)
        present[ids, i] = True
        for c in columns:
            values[c][ids, i] = metrics[i][c]
        keys.append(ids[edges[i][:, 0]] * n + ids[edges[i][:, 1]])
    edge_keys, edge_inverse = np.unique(np.concatenate(keys) if keys else np.empty(0, np.int64),
                                        return_inverse=True)
    edge_present = np.zeros((len(edge_keys), t), dtype=bool)
    edge_weight = np.zeros((len(edge_keys), t), dtype=np.int64)
    bounds = np.cumsum([0] + [len(k) for k in keys])
    for i in range(t):
        rows = edge_inverse[bounds[i]:bounds[i + 1]]
        edge_present[rows, i] = True
        edge_weight[rows, i] = weights[i]

    text = description + "".join(f"\ncrawl {i}: {name}" for i, name in enumerate(crawls, 1))
    yield (
        gexf_head(text, ' mode="dynamic" timeformat="integer" timerepresentation="interval"')
        + '<attributes class="node" mode="dynamic">\n'
        + "".join(f'<attribute id="{i}" title="{c}" type="{types[c]}"/>\n'
                  for i, c in enumerate(columns))
        + '</attributes>\n<attributes class="edge" mode="dynamic">\n'
        '<attribute id="weight" title="weight" type="long"/>\n</attributes>\n'
        f'<nodes count="{n}">\n'
    )
    ids: dict[str, int | str] = {c: i for i, c in enumerate(columns)}
    for start, stop in chunk_bounds(n):
        rows = range(start, stop)
        spells = _spells(present[rows.start:rows.stop])
        attvalues = _attvalues(values, present, ids, rows)
        yield "".join(
            f'<node id="{r}" label="{label}">{a}{s}</node>\n' for r, label, a, s in zip(
                rows, xml_texts(names[rows.start:rows.stop].tolist()), attvalues, spells,
                strict=True))
    yield f'</nodes>\n<edges count="{len(edge_keys)}">\n'
    for start, stop in chunk_bounds(len(edge_keys)):
        rows = range(start, stop)
        spells = _spells(edge_present[rows.start:rows.stop])
        attvalues = _attvalues({"weight": edge_weight}, edge_present, {"weight": "weight"}, rows)
        yield "".join(
            f'<edge id="{r}" source="{k // n}" target="{k % n}">{a}{s}</edge>\n'
            for r, k, a, s in zip(rows, edge_keys[rows.start:rows.stop].tolist(), attvalues,
                                  spells, strict=True))
    yield "</edges>\n</graph>\n</gexf>\n"
