"""Exports: GEXF 1.3 (schema-valid, loads in networkx), GraphML (networkx and igraph), JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import igraph
import networkx as nx
import numpy as np
import pytest
import xmlschema

from graphs import exports
from graphs.build import BuildOptions, build_graph
from graphs.errors import InvalidGraphRequest
from graphs.metrics import compute_metrics
from graphs.models import METRICS
from graphs.read import LinkTable

GEXF_XSD = Path(__file__).parent / "data" / "gexf" / "gexf-1.3-static.xsd"
# Labels that need escaping in XML, JSON and CSV, and one with a control character.
ODD = ['http://a.test/?q=1&r=<2>', 'http://a.test/"quoted",comma', "http://b.test/\x07bell",
       "http://c.test/ünï/ćödé", "http://c.test/back\\slash"]


@pytest.fixture(scope="module")
def graph():
    rng = random.Random(11)
    urls = ODD + [f"http://h{i % 7}.test/p{i}" for i in range(300)]
    pairs = {(rng.randrange(len(urls)), rng.randrange(len(urls))) for _ in range(1500)}
    source, target = np.array(sorted(pairs)).T
    table = LinkTable(
        urls=urls, status=np.where(np.arange(len(urls)) % 5 == 0, -1, 200).astype(np.int32),
        source=source, target=target,
        count=np.array(rng.choices([1, 2, 3], k=len(pairs)), dtype=np.int32),
        nofollow=np.zeros(len(pairs), dtype=bool),
    )
    g = build_graph(table, BuildOptions(level="page"))
    compute_metrics(g, list(METRICS), {"communities_seconds": 60})
    return g


def _write(g, fmt: str, tmp_path: Path, table: str = "nodes") -> Path:
    return exports.write_export(g, fmt, tmp_path / f"graph.{fmt}.{table}", table=table)


def _expected_edges(g) -> dict[tuple[str, str], int]:
    labels = list(g.vp.label)
    return {(labels[s], labels[t]): int(w) for s, t, w in g.get_edges([g.ep.weight])}


def test_gexf_validates_against_gexf_13_and_loads_in_networkx(graph, tmp_path):
    path = _write(graph, "gexf", tmp_path)
    xmlschema.XMLSchema(GEXF_XSD).validate(path)
    loaded = nx.read_gexf(path)
    assert loaded.number_of_nodes() == graph.num_vertices()
    assert loaded.number_of_edges() == graph.num_edges()
    labels = {n: d["label"] for n, d in loaded.nodes(data=True)}
    edges = {(labels[s], labels[t]): d["weight"] for s, t, d in loaded.edges(data=True)}
    expected = _expected_edges(graph)
    # XML cannot carry the bell character; the exporter drops it.
    assert edges == {(s.replace("\x07", ""), t.replace("\x07", "")): w
                     for (s, t), w in expected.items()}
    node = loaded.nodes["0"]
    assert node["pagerank"] == pytest.approx(graph.vp.pagerank[0])
    assert node["community"] == graph.vp.community[0]
    assert node["kcore"] == graph.vp.kcore[0]


def test_gexf_schema_rejects_what_gephi_would_not_read(tmp_path):
    bad = tmp_path / "bad.gexf"
    bad.write_text('<?xml version="1.0"?><gexf xmlns="http://gexf.net/1.3" version="1.3">'
                   '<graph><nodes><node label="no id"/></nodes><edges/></graph></gexf>')
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xmlschema.XMLSchema(GEXF_XSD).validate(bad)


def test_graphml_loads_in_networkx_and_igraph_with_the_same_counts(graph, tmp_path):
    path = _write(graph, "graphml", tmp_path)
    loaded = nx.read_graphml(path)
    assert (loaded.number_of_nodes(), loaded.number_of_edges()) == (
        graph.num_vertices(), graph.num_edges())
    labels = {n: d["label"] for n, d in loaded.nodes(data=True)}
    assert {(labels[s], labels[t]): d["weight"] for s, t, d in loaded.edges(data=True)} == {
        (s.replace("\x07", ""), t.replace("\x07", "")): w
        for (s, t), w in _expected_edges(graph).items()}
    ig = igraph.Graph.Read_GraphML(str(path))
    assert (ig.vcount(), ig.ecount()) == (graph.num_vertices(), graph.num_edges())
    assert ig.is_directed()
    assert sorted(ig.es["weight"]) == sorted(float(w) for w in graph.ep.weight.a)


def test_json_node_link_round_trips(graph, tmp_path):
    data = json.loads(_write(graph, "json", tmp_path).read_text())
    loaded = nx.node_link_graph(data, edges="links")
    assert (loaded.number_of_nodes(), loaded.number_of_edges()) == (
        graph.num_vertices(), graph.num_edges())
    labels = {n: d["label"] for n, d in loaded.nodes(data=True)}
    assert {(labels[s], labels[t]): d["weight"] for s, t, d in loaded.edges(data=True)} == (
        _expected_edges(graph))


def test_csv_nodes_and_edges(graph, tmp_path):
    nodes = list(csv.DictReader(io.StringIO(_write(graph, "csv", tmp_path).read_text())))
    edges = list(csv.DictReader(io.StringIO(
        _write(graph, "csv", tmp_path, table="edges").read_text())))
    assert len(nodes) == graph.num_vertices() and len(edges) == graph.num_edges()
    labels = {row["id"]: row["label"] for row in nodes}
    assert labels["1"] == ODD[1]
    assert {(labels[e["source"]], labels[e["target"]]): int(e["weight"]) for e in edges} == (
        _expected_edges(graph))
    assert float(nodes[3]["pagerank"]) == graph.vp.pagerank[3]


def test_exports_stream_in_chunks(graph, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 50)
    chunks = list(exports.iter_gexf(graph))
    assert len(chunks) > graph.num_vertices() // 50
    assert max(map(len, chunks)) < len("".join(chunks)) / 5


def test_unknown_format_is_422():
    with pytest.raises(InvalidGraphRequest) as err:
        exports.exporter("pajek")
    assert err.value.status_code == 422 and "graphml" in err.value.hint


def test_bundle_writes_the_crawl_files(graph, tmp_path):
    written = exports.write_bundle(tmp_path / "out", graph, graph)
    assert sorted(p.name for p in written) == sorted(
        ["page.gexf", "page.graphml", "host.gexf", "nodes.csv", "edges.csv"])
    assert all(p.stat().st_size > 0 for p in written)


@pytest.fixture(scope="module")
def unfolded():
    """A page graph built with fold_redirects off: links and redirect hops, one edge both."""
    urls = ["http://a.test/", "http://a.test/x", "http://a.test/x/", "https://a.test/x/",
            "http://a.test/&<odd>"]
    links = [(0, 1, 2), (0, 3, 1), (3, 0, 1), (2, 3, 4), (0, 4, 1)]
    table = LinkTable(
        urls=urls, status=np.array([200, 301, 301, 200, -1], dtype=np.int32),
        source=np.array([s for s, _, _ in links]), target=np.array([t for _, t, _ in links]),
        count=np.array([c for _, _, c in links], dtype=np.int32),
        nofollow=np.zeros(len(links), dtype=bool),
        redirect_source=np.array([1, 2]), redirect_target=np.array([2, 3]),
    )
    return build_graph(table, BuildOptions(fold_redirects=False))


UNFOLDED_EDGES = {("http://a.test/", "http://a.test/x"): (2, False),
                  ("http://a.test/", "https://a.test/x/"): (1, False),
                  ("https://a.test/x/", "http://a.test/"): (1, False),
                  ("http://a.test/x", "http://a.test/x/"): (1, True),
                  ("http://a.test/x/", "https://a.test/x/"): (5, True),  # a link and a hop
                  ("http://a.test/", "http://a.test/&<odd>"): (1, False)}


def test_every_format_marks_the_redirect_edges_of_an_unfolded_graph(unfolded, tmp_path):
    path = _write(unfolded, "gexf", tmp_path)
    xmlschema.XMLSchema(GEXF_XSD).validate(path)
    for fmt, read in (("gexf", nx.read_gexf), ("graphml", nx.read_graphml)):
        loaded = read(_write(unfolded, fmt, tmp_path))
        labels = dict(loaded.nodes(data="label"))
        assert {(labels[s], labels[t]): (d["weight"], d["redirect"])
                for s, t, d in loaded.edges(data=True)} == UNFOLDED_EDGES, fmt
    data = json.loads(_write(unfolded, "json", tmp_path).read_text())
    labels = {n["id"]: n["label"] for n in data["nodes"]}
    assert {(labels[e["source"]], labels[e["target"]]): (e["weight"], e["redirect"])
            for e in data["links"]} == UNFOLDED_EDGES
    nodes = list(csv.DictReader(io.StringIO(_write(unfolded, "csv", tmp_path).read_text())))
    labels = {row["id"]: row["label"] for row in nodes}
    edges = csv.DictReader(io.StringIO(_write(unfolded, "csv", tmp_path, "edges").read_text()))
    assert {(labels[e["source"]], labels[e["target"]]): (int(e["weight"]),
                                                         e["redirect"] == "true")
            for e in edges} == UNFOLDED_EDGES


def test_a_folded_graph_has_no_redirect_attribute(graph, tmp_path):
    assert "redirect" not in graph.ep
    assert "redirect" not in _write(graph, "graphml", tmp_path).read_text()
    assert _write(graph, "csv", tmp_path, "edges").read_text().startswith(
        "source,target,weight\n")
