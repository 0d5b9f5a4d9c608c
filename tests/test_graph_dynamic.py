"""The dynamic GEXF 1.3 of a series of builds: schema-valid, spells and values per crawl."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import networkx as nx
import pytest
import xmlschema

from graphs.dynamic import iter_dynamic_gexf
from tests.test_graph_diff import DYNAMIC_XSD, NS, _graph, _spells

# Three crawls: d leaves after the first and comes back in the third; e is new in the second.
SERIES = [
    ("abcd", ["ab", "bc", "cd"], {"a": 0.5, "b": 0.25, "c": 0.125, "d": 0.125}),
    ("abce", ["ab", "ce"], {"a": 0.25, "b": 0.25, "c": 0.25, "e": 0.25}),
    ("abcde", ["ab", "cd", "ea"], {"a": 0.2, "b": 0.2, "c": 0.2, "d": 0.2, "e": 0.2}),
]


def _series():
    return [_graph(nodes, edges, ranks) for nodes, edges, ranks in SERIES]


def _text() -> str:
    return "".join(iter_dynamic_gexf(_series(), ["job 1", "job 2", "job 3"]))


def test_the_series_validates_against_gexf_13_with_dynamics():
    text = _text()
    xmlschema.XMLSchema(DYNAMIC_XSD).validate(io.StringIO(text))
    graph = ET.fromstring(text).find("g:graph", NS)
    assert (graph.get("mode"), graph.get("timeformat")) == ("dynamic", "integer")


def test_the_schema_refuses_a_spell_that_is_no_time():
    bad = _text().replace('<spell start="1"', '<spell start="first"', 1)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xmlschema.XMLSchema(DYNAMIC_XSD).validate(io.StringIO(bad))


def test_node_and_edge_spells_are_the_crawls_that_had_them():
    root = ET.fromstring(_text())
    nodes = {n.get("label"): n for n in root.iterfind(".//g:node", NS)}
    assert {label: _spells(n) for label, n in nodes.items()} == {
        "a": [(1, 3)], "b": [(1, 3)], "c": [(1, 3)], "d": [(1, 1), (3, 3)], "e": [(2, 3)]}
    ids = {n.get("id"): label for label, n in nodes.items()}
    edges = {(ids[e.get("source")], ids[e.get("target")]): _spells(e)
             for e in root.iterfind(".//g:edge", NS)}
    assert edges == {("a", "b"): [(1, 3)], ("b", "c"): [(1, 1)], ("c", "d"): [(1, 1), (3, 3)],
                     ("c", "e"): [(2, 2)], ("e", "a"): [(3, 3)]}
    # and the truth the other way round: every crawl's own nodes, from the spells
    for crawl, (labels, _, _) in enumerate(SERIES, 1):
        assert {x for x, n in nodes.items()
                if any(s <= crawl <= e for s, e in _spells(n))} == set(labels)


def test_metrics_are_dynamic_values_per_crawl():
    root = ET.fromstring(_text())
    titles = {a.get("id"): a.get("title") for a in root.iterfind(
        "g:graph/g:attributes[@class='node']/g:attribute", NS)}
    d = next(n for n in root.iterfind(".//g:node", NS) if n.get("label") == "d")
    values = {(int(v.get("start")), float(v.get("value"))) for v in d.iterfind(
        "g:attvalues/g:attvalue", NS) if titles[v.get("for")] == "pagerank"}
    assert values == {(1, 0.125), (3, 0.2)}


def test_a_crawl_name_per_graph_is_required():
    with pytest.raises(ValueError, match="3 graphs but 2"):
        "".join(iter_dynamic_gexf(_series(), ["job 1", "job 2"]))


def test_networkx_reads_the_spells_and_the_dynamic_values():
    g = nx.read_gexf(io.BytesIO(_text().encode()))
    by_label = {d["label"]: d for _, d in g.nodes(data=True)}
    assert by_label["d"]["spells"] == [(1, 1), (3, 3)]
    assert by_label["e"]["pagerank"] == [(0.25, 2, 2), (0.2, 3, 3)]
