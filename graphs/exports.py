"""Streamed exports of a built graph: GraphML, GEXF 1.3, JSON node-link and CSV.

Each `iter_*` function yields the file in chunks of `CHUNK` nodes or edges,
so a graph of millions of nodes is never one string in memory: the API
streams the chunks to the client, `write_export` to a file. Per chunk, labels
are escaped in one pass (joined on NUL, which Postgres text cannot contain)
and rows are formatted with one template, so there is no per-value Python
branching.

Every node carries its label (URL, host or domain), `pages`, `crawled`,
each metric that the build computed and, at the page level, the text
attributes `discovered` and (canonicals not folded) `canonical`, "" for none;
every edge its weight (number of links)
and, in a graph built without folding redirects, `redirect` (true when the
edge stands for a redirect hop).
Node ids are the graph's vertex indices, the same as `graph_nodes.node_id`.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import graph_tool as gt
import msgspec
import numpy as np

from graphs.errors import InvalidGraphRequest
from graphs.models import EXPORT_FORMATS, NODE_COLUMNS, TEXT_COLUMNS

CHUNK = 20_000
# XML 1.0 forbids these characters even escaped; NUL stays out of the set because it
# is the chunk separator (and cannot occur in Postgres text).
_INVALID_XML = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
XML_TYPES = {"int32_t": ("integer", "int"), "int64_t": ("long", "long"),
             "double": ("double", "double")}
MEDIA_TYPES = {
    "graphml": "application/graphml+xml",
    "gexf": "application/gexf+xml",
    "json": "application/json",
    "csv": "text/csv",
}
SUFFIXES = {"graphml": ".graphml", "gexf": ".gexf", "json": ".json", "csv": ".csv"}


def node_columns(g: gt.Graph) -> list[str]:
    """The node attributes that `g` has, in `graph_nodes` column order."""
    return [c for c in NODE_COLUMNS if c in g.vp]


def text_columns(g: gt.Graph) -> list[str]:
    """The text node attributes that `g` has (`TEXT_COLUMNS`), in that order."""
    return [c for c in TEXT_COLUMNS if c in g.vp]


def xml_texts(labels: list[str]) -> list[str]:
    """Texts as XML attribute values: escaped, the characters XML 1.0 forbids removed."""
    joined = _INVALID_XML.sub("", "\x00".join(labels))
    return html.escape(joined, quote=True).split("\x00") if labels else []


def chunk_bounds(n: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each chunk of `CHUNK` of n rows."""
    for start in range(0, n, CHUNK):
        yield start, min(start + CHUNK, n)


def vertex_texts(prop: gt.VertexPropertyMap, start: int, stop: int) -> list[str]:
    """The values of the string vertex property `prop` for vertices start..stop."""
    return [prop[v] for v in range(start, stop)]


def label_array(g: gt.Graph) -> np.ndarray:
    """Every node's label as a numpy object array (node identity across builds)."""
    out = np.empty(g.num_vertices(), dtype=object)
    out[:] = vertex_texts(g.vp.label, 0, g.num_vertices())
    return out


def _labels(g: gt.Graph, start: int, stop: int) -> list[str]:
    return vertex_texts(g.vp.label, start, stop)


def _columns(g: gt.Graph, names: list[str], start: int, stop: int) -> list[list]:
    return [g.vp[name].a[start:stop].tolist() for name in names]


def _texts(g: gt.Graph, names: list[str], start: int, stop: int,
           escape: Callable[[list[str]], list[str]] | None = None) -> list[list[str]]:
    """The text attributes `names` of nodes start..stop, each list through `escape`."""
    out = []
    for name in names:
        values = vertex_texts(g.vp[name], start, stop)
        out.append(escape(values) if escape is not None else values)
    return out


def _edges(g: gt.Graph) -> np.ndarray:
    """(source, target, weight[, redirect as 0/1]) per edge."""
    return g.get_edges([g.ep.weight, g.ep.redirect] if "redirect" in g.ep else [g.ep.weight])


def _has_redirect(g: gt.Graph) -> bool:
    return "redirect" in g.ep


_BOOLEANS = np.array(["false", "true"])


def _edge_rows(edges: np.ndarray, redirect: bool) -> Iterable[Sequence]:
    """Rows of `_edges`, the redirect column (0/1) as false/true."""
    if not redirect:
        return edges.tolist()
    return zip(*edges[:, :3].T.tolist(), _BOOLEANS[edges[:, 3]].tolist(), strict=True)


def iter_graphml(g: gt.Graph) -> Iterator[str]:
    """GraphML: node ids `n<i>`, keys for label, counts, metrics, text attributes and weight."""
    names, texts = node_columns(g), text_columns(g)
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
        'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
        '<key id="label" for="node" attr.name="label" attr.type="string"/>\n'
    )
    yield "".join(
        f'<key id="{name}" for="node" attr.name="{name}" '
        f'attr.type="{XML_TYPES[g.vp[name].value_type()][1]}"/>\n'
        for name in names
    ) + "".join(f'<key id="{name}" for="node" attr.name="{name}" attr.type="string"/>\n'
                for name in texts)
    yield '<key id="weight" for="edge" attr.name="weight" attr.type="long"/>\n'
    redirect = _has_redirect(g)
    if redirect:
        yield '<key id="redirect" for="edge" attr.name="redirect" attr.type="boolean"/>\n'
    yield '<graph id="G" edgedefault="directed">\n'
    template = '<node id="n{}"><data key="label">{}</data>' + "".join(
        f'<data key="{name}">{{}}</data>' for name in (*names, *texts)
    ) + "</node>\n"
    for start, stop in chunk_bounds(g.num_vertices()):
        rows = zip(range(start, stop), xml_texts(_labels(g, start, stop)),
                   *_columns(g, names, start, stop),
                   *_texts(g, texts, start, stop, xml_texts), strict=True)
        yield "".join(template.format(*row) for row in rows)
    edges = _edges(g)
    template = ('<edge source="n{}" target="n{}"><data key="weight">{}</data>'
                + ('<data key="redirect">{}</data>' if redirect else "") + "</edge>\n")
    for start, stop in chunk_bounds(len(edges)):
        yield "".join(template.format(*row) for row in _edge_rows(edges[start:stop], redirect))
    yield "</graph>\n</graphml>\n"


def gexf_head(description: str, graph: str = "") -> str:
    """A GEXF 1.3 file up to its `<graph>` tag; `graph`: more attributes of that tag."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gexf xmlns="http://gexf.net/1.3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://gexf.net/1.3 http://gexf.net/1.3/gexf.xsd" version="1.3">\n'
        f'<meta lastmodifieddate="{dt.date.today().isoformat()}"><creator>crawlgraph</creator>'
        f"<description>{html.escape(_INVALID_XML.sub('', description))}</description></meta>\n"
        f'<graph defaultedgetype="directed" idtype="integer"{graph}>\n'
    )


def iter_gexf(g: gt.Graph, description: str = "") -> Iterator[str]:
    """GEXF 1.3 (the format Gephi opens): labels, metrics and communities, edge weights."""
    names, texts = node_columns(g), text_columns(g)
    yield gexf_head(description) + '<attributes class="node">\n'
    yield "".join(
        f'<attribute id="{i}" title="{name}" type="{XML_TYPES[g.vp[name].value_type()][0]}"/>\n'
        for i, name in enumerate(names)
    ) + "".join(f'<attribute id="{len(names) + i}" title="{name}" type="string"/>\n'
                for i, name in enumerate(texts))
    yield "</attributes>\n"
    redirect = _has_redirect(g)
    if redirect:
        yield ('<attributes class="edge">\n'
               '<attribute id="redirect" title="redirect" type="boolean"/>\n</attributes>\n')
    yield f'<nodes count="{g.num_vertices()}">\n'
    values = "".join(f'<attvalue for="{i}" value="{{}}"/>'
                     for i in range(len(names) + len(texts)))
    template = '<node id="{}" label="{}"><attvalues>' + values + "</attvalues></node>\n"
    for start, stop in chunk_bounds(g.num_vertices()):
        rows = zip(range(start, stop), xml_texts(_labels(g, start, stop)),
                   *_columns(g, names, start, stop),
                   *_texts(g, texts, start, stop, xml_texts), strict=True)
        yield "".join(template.format(*row) for row in rows)
    edges = _edges(g)
    yield f'</nodes>\n<edges count="{len(edges)}">\n'
    template = ('<edge id="{}" source="{}" target="{}" weight="{}"'
                + ('><attvalues><attvalue for="redirect" value="{}"/></attvalues></edge>\n'
                   if redirect else "/>\n"))
    for start, stop in chunk_bounds(len(edges)):
        rows = zip(range(start, stop), _edge_rows(edges[start:stop], redirect), strict=True)
        yield "".join(template.format(i, *row) for i, row in rows)
    yield "</edges>\n</graph>\n</gexf>\n"


def iter_json(g: gt.Graph) -> Iterator[str]:
    """JSON node-link (d3, sigma.js, `networkx.node_link_graph(..., edges="links")`)."""
    names, texts = node_columns(g), text_columns(g)
    level = g.gp.level if "level" in g.gp else ""
    head = {"directed": True, "multigraph": False, "graph": {"level": level}}
    yield msgspec.json.encode(head).decode()[:-1] + ',"nodes":['
    keys = ["id", "label", *names, *texts]
    for start, stop in chunk_bounds(g.num_vertices()):
        rows = [dict(zip(keys, row, strict=True)) for row in zip(
            range(start, stop), _labels(g, start, stop), *_columns(g, names, start, stop),
            *_texts(g, texts, start, stop), strict=True)]
        yield ("," if start else "") + msgspec.json.encode(rows).decode()[1:-1]
    yield '],"links":['
    edges = _edges(g)
    redirect = _has_redirect(g)
    template = ('{{"source":{},"target":{},"weight":{}'
                + (',"redirect":{}}}' if redirect else "}}"))
    for start, stop in chunk_bounds(len(edges)):
        yield ("," if start else "") + ",".join(
            template.format(*row) for row in _edge_rows(edges[start:stop], redirect))
    yield "]}\n"


def _csv_text(rows: Iterable[Iterable]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def iter_csv_nodes(g: gt.Graph) -> Iterator[str]:
    """nodes.csv: id, label, pages, crawled, the metrics and the text attributes."""
    names, texts = node_columns(g), text_columns(g)
    yield _csv_text([["id", "label", *names, *texts]])
    for start, stop in chunk_bounds(g.num_vertices()):
        yield _csv_text(zip(range(start, stop), _labels(g, start, stop),
                            *_columns(g, names, start, stop), *_texts(g, texts, start, stop),
                            strict=True))


def iter_csv_edges(g: gt.Graph) -> Iterator[str]:
    """edges.csv: source id, target id, weight[, redirect] (Gephi's spreadsheet import reads it)."""
    redirect = _has_redirect(g)
    yield "source,target,weight,redirect\n" if redirect else "source,target,weight\n"
    edges = _edges(g)
    for start, stop in chunk_bounds(len(edges)):
        yield _csv_text(_edge_rows(edges[start:stop], redirect))


def exporter(fmt: str, table: str = "nodes") -> Callable[[gt.Graph], Iterator[str]]:
    """The streaming writer of a format (for csv, of the `nodes` or `edges` table)."""
    if fmt == "csv":
        if table not in ("nodes", "edges"):
            raise InvalidGraphRequest(f"Unknown CSV table {table!r}.", hint="Use nodes or edges.")
        return iter_csv_nodes if table == "nodes" else iter_csv_edges
    writers = {"graphml": iter_graphml, "gexf": iter_gexf, "json": iter_json}
    if fmt not in writers:
        raise InvalidGraphRequest(f"Unknown export format {fmt!r}.",
                                  hint=f"Use one of: {', '.join(EXPORT_FORMATS)}.")
    return writers[fmt]


def write_chunks(chunks: Iterable[str], path: str | os.PathLike) -> Path:
    """Write streamed chunks to `path` atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        for chunk in chunks:
            out.write(chunk)
    os.replace(tmp, path)
    return path


def write_export(g: gt.Graph, fmt: str, path: str | os.PathLike, table: str = "nodes") -> Path:
    """Write `g` as `fmt` to `path`, streamed."""
    return write_chunks(exporter(fmt, table)(g), path)


def write_bundle(out_dir: str | os.PathLike, page: gt.Graph, host: gt.Graph | None) -> list[Path]:
    """The files of a crawl's graphs: page.gexf, page.graphml, host.gexf, nodes.csv, edges.csv.

    nodes.csv and edges.csv describe the page graph.
    """
    out = Path(out_dir)
    written = [
        write_export(page, "gexf", out / "page.gexf"),
        write_export(page, "graphml", out / "page.graphml"),
    ]
    if host is not None:
        written.append(write_export(host, "gexf", out / "host.gexf"))
    written.append(write_export(page, "csv", out / "nodes.csv", table="nodes"))
    written.append(write_export(page, "csv", out / "edges.csv", table="edges"))
    return written
