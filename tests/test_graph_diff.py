"""The diff of two graph builds: nodes, edges, metric movers, merged and split components."""

from __future__ import annotations

import csv
import io
import json
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import graph_tool as gt
import psycopg
import pytest
import xmlschema

from graphs import store
from graphs.diff import diff_builds, diff_graphs, diff_rows
from graphs.errors import InvalidGraphRequest
from graphs.models import GraphBuildRequest
from graphs.pipeline import build_now
from tests.api_fixtures import assert_error, login
from tests.graphdata import add_links, add_pages, make_job, make_user
from tests.sitegen import generate_site
from tests.test_api_schedules import _schedule
from tests.websites import websites_fixture  # noqa: F401 - the `websites` fixture

pytest_plugins = ["tests.api_fixtures"]
DYNAMIC_XSD = Path(__file__).parent / "data" / "gexf" / "gexf-1.3-dynamic.xsd"
NS = {"g": "http://gexf.net/1.3"}
A, B = uuid.uuid4(), uuid.uuid4()


def _graph(nodes: str, edges: list[str], pagerank: dict[str, float] | None = None) -> gt.Graph:
    """A graph of one-letter nodes; edges as "ab" (a -> b)."""
    g = gt.Graph(directed=True)
    g.add_vertex(len(nodes))
    g.vp.label = g.new_vp("string", vals=list(nodes))
    g.add_edge_list([(nodes.index(e[0]), nodes.index(e[1])) for e in edges])
    g.vp.pagerank = g.new_vp("double", vals=[(pagerank or {}).get(x, 0.0) for x in nodes])
    return g


def _spells(element) -> list[tuple[int, int]]:
    """(start, end) of each spell of a dynamic GEXF node or edge."""
    return [(int(s.get("start")), int(s.get("end")))
            for s in element.iterfind("g:spells/g:spell", NS)]


def _parts(changes) -> dict[str, set[str]]:
    return {c.example: {p.example for p in c.parts} for c in changes}


def test_nodes_and_edges_added_and_removed():
    d = diff_graphs(_graph("abcd", ["ab", "bc", "cd"]), _graph("abce", ["ab", "ca", "ce"]),
                    A, B, "page")
    assert (d.nodes.added_labels, d.nodes.removed_labels, d.nodes.common) == (["e"], ["d"], 3)
    assert {(e.source, e.target) for e in d.edges.added_edges} == {("c", "a"), ("c", "e")}
    assert {(e.source, e.target) for e in d.edges.removed_edges} == {("b", "c"), ("c", "d")}
    assert (d.edges.a, d.edges.b, d.edges.common, d.edges.added, d.edges.removed) == (3, 3, 1, 2, 2)


def test_lists_are_bounded_and_counts_are_not():
    a = _graph("ab", ["ab"])
    b = _graph("abcdefgh", ["ab", "bc", "cd", "de", "ef", "fg", "gh"])
    d = diff_graphs(a, b, A, B, "page", limit=2)
    assert d.nodes.added == 6 and d.nodes.added_labels == ["c", "d"]
    assert d.edges.added == 6 and len(d.edges.added_edges) == 2


def test_two_components_that_merge():
    a, b = _graph("abcdxy", ["ab", "cd", "xy"]), _graph("abcdxy", ["ab", "bc", "cd", "xy"])
    d = diff_graphs(a, b, A, B, "page")
    assert (d.components.a, d.components.b) == (3, 2)
    assert (d.components.merges, d.components.splits) == (1, 0)
    assert _parts(d.components.merged) == {"a": {"a", "c"}}
    assert d.components.merged[0].size == 4
    assert sorted(p.size for p in d.components.merged[0].parts) == [2, 2]


def test_a_component_that_splits_in_three_and_new_nodes_that_merge_nothing():
    a = _graph("abcdef", ["ab", "bc", "cd", "de", "ef"])
    b = _graph("abcdefz", ["ab", "cd", "ef", "fz"])  # z is new: it joins e-f, no merge
    d = diff_graphs(a, b, A, B, "page")
    assert (d.components.merges, d.components.splits) == (0, 1)
    assert _parts(d.components.split) == {"a": {"a", "c", "e"}}
    split = d.components.split[0]
    assert split.size == 6 and split.parts_count == 3
    assert {p.example: (p.size, p.shared) for p in split.parts} == {
        "a": (2, 2), "c": (2, 2), "e": (3, 2)}


def test_a_merge_and_a_split_at_once():
    a = _graph("abcdxy", ["ab", "bc", "xy"])  # {a,b,c} {x,y} {d}
    b = _graph("abcdxy", ["ab", "cx", "xy", "cd"])  # {a,b} {c,d,x,y}
    d = diff_graphs(a, b, A, B, "page")
    assert _parts(d.components.split) == {"a": {"a", "c"}}
    assert _parts(d.components.merged) == {"c": {"a", "d", "x"}}


def test_movers_by_value_and_by_rank():
    a = _graph("abcd", [], {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1})
    b = _graph("abcd", [], {"a": 0.1, "b": 0.3, "c": 0.25, "d": 0.35})
    d = diff_graphs(a, b, A, B, "page", metric="pagerank", top=2)
    assert [(m.label, round(m.delta, 6)) for m in d.metric.movers] == [("a", -0.3), ("d", 0.25)]
    first = d.metric.movers[0]
    assert (first.rank_a, first.rank_b, first.rank_change) == (1, 4, -3)
    assert [(m.label, m.rank_change) for m in d.metric.rank_movers] == [("a", -3), ("d", 3)]
    # b did not move at all: never a mover, whatever `top` is
    assert "b" not in {m.label for m in diff_graphs(a, b, A, B, "page", top=10).metric.movers}


def test_csv_rows_name_every_listed_change():
    d = diff_graphs(_graph("abc", ["ab"], {"a": 1.0}), _graph("abd", ["ad"], {"a": 0.5}),
                    A, B, "page")
    kinds = {(r[0], r[1], r[2]) for r in diff_rows(d)}
    assert {("node_added", "d", ""), ("node_removed", "c", ""), ("edge_added", "a", "d"),
            ("edge_removed", "a", "b"), ("mover", "a", "pagerank")} <= kinds


# --- stored builds: refusals, and a diff equal to the generator's truth -------------------

def _write(conn, owner: int, site, origin: str) -> uuid.UUID:
    job = make_job(conn, owner)
    add_pages(conn, job, sorted(site.page_urls(origin)))
    add_links(conn, job, [(s, t, 1, False) for s, t in sorted(site.link_set(origin))])
    return job


@pytest.fixture
def two_crawls(database_url, tmp_path):
    """Builds of two versions of a generated site (the second: other random links, more pages)."""
    origin = "http://site.test"
    old, new = generate_site(30, seed=4), generate_site(36, seed=5)
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        jobs = [_write(conn, owner, site, origin) for site in (old, new)]
    request = GraphBuildRequest(metrics=["degree", "pagerank"], self_loops=True)
    builds = [build_now(database_url, tmp_path, owner, [j], request) for j in jobs]
    host = build_now(database_url, tmp_path, owner, [jobs[0]],
                     GraphBuildRequest(level="host", metrics=["degree"]))
    with psycopg.connect(database_url) as conn:
        rows = [store.get_build(conn, b) for b in (*builds, host)]
    return origin, old, new, rows


def _truth_nodes(site, origin: str) -> set[str]:
    return site.page_urls(origin) | {u for link in site.link_set(origin) for u in link}


def test_the_diff_of_two_builds_is_the_generators_difference(two_crawls, tmp_path):
    origin, old, new, (a, b, _) = two_crawls
    d = diff_builds(tmp_path, a, b, metric="pagerank", top=5, limit=10_000)
    old_links, new_links = old.link_set(origin), new.link_set(origin)
    assert {(e.source, e.target) for e in d.edges.added_edges} == new_links - old_links
    assert {(e.source, e.target) for e in d.edges.removed_edges} == old_links - new_links
    assert d.edges.common == len(old_links & new_links) > 0
    old_nodes, new_nodes = _truth_nodes(old, origin), _truth_nodes(new, origin)
    assert set(d.nodes.added_labels) == new_nodes - old_nodes
    assert set(d.nodes.removed_labels) == old_nodes - new_nodes
    assert len(d.metric.movers) == 5 and all(m.delta != 0 for m in d.metric.movers)
    assert abs(d.metric.movers[0].delta) >= abs(d.metric.movers[-1].delta)


def test_mixed_levels_and_a_metric_one_build_lacks_are_refused(two_crawls, tmp_path):
    _, _, _, (a, b, host) = two_crawls
    with pytest.raises(InvalidGraphRequest, match="same level"):
        diff_builds(tmp_path, a, host, metric=None)
    with pytest.raises(InvalidGraphRequest, match="did not compute 'hits'"):
        diff_builds(tmp_path, a, b, metric="authority")
    with pytest.raises(InvalidGraphRequest, match="Unknown metric"):
        diff_builds(tmp_path, a, b, metric="label")


# --- the API: the diff of two builds, a schedule's series, both authorised like graph reads --

def _api_builds(database_url, home, owner: int, sites, slots=None, schedule=None):
    origin = "http://site.test"
    out = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        jobs = [_write(conn, owner, site, origin) for site in sites]
        for i, job in enumerate(jobs):
            if schedule is not None:
                conn.execute("UPDATE jobs SET schedule_id = %s, schedule_slot = %s "
                             "WHERE id = %s", (schedule, slots[i], job))
    for job in jobs:
        out.append(build_now(database_url, home, owner, [job],
                             GraphBuildRequest(metrics=["degree", "pagerank"], self_loops=True)))
    return jobs, out


def test_the_api_diff_in_json_and_csv_for_owners_and_admins_only(client, api_settings, users,
                                                                 database_url):
    home = api_settings.home
    sites = [generate_site(20, seed=1), generate_site(20, seed=2)]
    _, (a, b) = _api_builds(database_url, home, users["alice"], sites)
    _, (theirs,) = _api_builds(database_url, home, users["bob"], sites[:1])
    alice, bob, root = login(client, "alice"), login(client, "bob"), login(client, "root")
    answer = client.get(f"/api/v1/graphs/{a}/diff/{b}", params={"top": 3}, headers=alice)
    assert answer.status_code == 200, answer.text
    d = answer.json()
    truth_added = sites[1].link_set("http://site.test") - sites[0].link_set("http://site.test")
    assert d["edges"]["added"] == len(truth_added) and len(d["metric"]["movers"]) == 3
    rows = client.get(f"/api/v1/graphs/{a}/diff/{b}", params={"format": "csv", "limit": 10_000},
                      headers=alice)
    assert rows.headers["content-type"].startswith("text/csv")
    lines = rows.text.splitlines()
    assert lines[0] == "change,label,target,a,b,delta,rank_a,rank_b"
    assert {tuple(x.split(",")[1:3]) for x in lines if x.startswith("edge_added,")} == truth_added
    # Both builds must be the caller's: either one of another user is a 404 like an unknown id.
    for pair in ((a, theirs), (theirs, a)):
        assert_error(client.get(f"/api/v1/graphs/{pair[0]}/diff/{pair[1]}", headers=alice),
                     404, "not_found")
    assert_error(client.get(f"/api/v1/graphs/{theirs}/diff/{a}", headers=bob), 404, "not_found")
    assert client.get(f"/api/v1/graphs/{theirs}/diff/{a}", headers=root).status_code == 200
    assert_error(client.get(f"/api/v1/graphs/{a}/diff/{b}", params={"metric": "authority"},
                            headers=alice), 422)


def test_a_schedules_series_as_dynamic_gexf(client, api_settings, users, database_url,
                                            monkeypatch, tmp_path):
    alice, bob = login(client, "alice"), login(client, "bob")
    schedule = _schedule(client, alice)["id"]
    url = f"/api/v1/schedules/{schedule}/graphs.gexf"
    assert_error(client.get(url, headers=alice), 409)  # no crawl yet
    sites = [generate_site(12, seed=1), generate_site(15, seed=2)]
    slots = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(3)]
    # The third crawl comes first in the table but last in slot order; its build is missing.
    with psycopg.connect(database_url, autocommit=True) as conn:
        late = _write(conn, users["alice"], sites[0], "http://site.test")
        conn.execute("UPDATE jobs SET schedule_id = %s, schedule_slot = %s WHERE id = %s",
                     (schedule, slots[2], late))
    _api_builds(database_url, api_settings.home, users["alice"], sites, slots, schedule)
    refused = assert_error(client.get(url, headers=alice), 409)
    assert str(late) in refused["message"] and "POST /api/v1/jobs/{id}/graphs" in refused["hint"]
    build_now(database_url, api_settings.home, users["alice"], [late],
              GraphBuildRequest(metrics=["degree"]))
    answer = client.get(url, headers=alice)
    assert answer.status_code == 200, answer.text
    xmlschema.XMLSchema(DYNAMIC_XSD).validate(io.StringIO(answer.text))
    nodes = {n.get("label"): _spells(n) for n in ET.fromstring(answer.text).iterfind(
        ".//g:node", NS)}
    origin = "http://site.test"
    for crawl, site in enumerate([sites[0], sites[1], sites[0]], 1):
        assert {x for x, spells in nodes.items()
                if any(s <= crawl <= e for s, e in spells)} == _truth_nodes(site, origin)
    assert_error(client.get(url, headers=bob), 404, "not_found")
    # The CLI writes the same file (same crawls, same order) from the database.
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CRAWLGRAPH_HOME", str(api_settings.home))
    assert main(["graph", "series", schedule, "-o", str(tmp_path / "s.gexf")]) == 0
    written = ET.parse(tmp_path / "s.gexf").getroot()
    assert {n.get("label"): _spells(n) for n in written.iterfind(".//g:node", NS)} == nodes


def test_the_cli_diff_in_json_and_csv(two_crawls, tmp_path, database_url, monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CRAWLGRAPH_HOME", str(tmp_path))
    origin, old, new, (a, b, host) = two_crawls
    truth = new.link_set(origin) - old.link_set(origin)
    assert main(["graph", "diff", str(a["id"]), str(b["id"]), "--top", "4",
                 "--limit", "10000"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {(e["source"], e["target"]) for e in shown["edges"]["added_edges"]} == truth
    assert len(shown["metric"]["movers"]) == 4
    assert main(["graph", "diff", str(a["id"]), str(b["id"]), "--csv", "--limit", "10000"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert {(r[1], r[2]) for r in rows if r[0] == "edge_added"} == truth
    assert main(["graph", "diff", str(a["id"]), str(host["id"])]) != 0
    assert "same level" in capsys.readouterr().err


# --- two real crawls of two versions of a site, against the generator's truth -------------

@pytest.mark.slow
def test_two_crawls_of_a_changed_site_diff_and_play_as_the_generator_says(
        websites, database_url, redis_url, tmp_path):
    from graphs.dynamic import iter_dynamic_gexf
    from tests.crawlrun import run_crawl
    from tests.test_graph_canonical import SITE

    # The same named site (same URLs) in two versions: other pages, other links.
    old, new = websites(pages=9, seed=7), websites(pages=12, seed=8)
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        jobs = [make_job(conn, owner, status="running") for _ in range(2)]
    for sites, job in zip((old, new), jobs, strict=True):
        settings = {**sites.settings, "CRAWLGRAPH_DATABASE_URL": database_url,
                    "CRAWLGRAPH_REDIS_URL": redis_url}
        result = run_crawl(SITE, {"job_id": str(job),
                                  "start_urls": json.dumps([sites.world.home()]),
                                  "allowed_domains": json.dumps(list(sites.world.sites))},
                           settings, stack=True, timeout=240)
        assert result.reason == "finished", result.log[-3000:]
    request = GraphBuildRequest(metrics=["degree", "pagerank"], self_loops=True)
    ids = [build_now(database_url, tmp_path, owner, [job], request) for job in jobs]
    with psycopg.connect(database_url) as conn:
        a, b = (store.get_build(conn, i) for i in ids)
    d = diff_builds(tmp_path, a, b, metric="pagerank", limit=10_000)
    site = old.world.sites[0]
    old_links, new_links = old.world.link_graph(site), new.world.link_graph(site)
    old_nodes, new_nodes = old.world.graph_nodes(site), new.world.graph_nodes(site)
    assert new_links - old_links and old_links - new_links and old_links & new_links
    assert {(e.source, e.target) for e in d.edges.added_edges} == new_links - old_links
    assert {(e.source, e.target) for e in d.edges.removed_edges} == old_links - new_links
    assert set(d.nodes.added_labels) == new_nodes - old_nodes
    assert set(d.nodes.removed_labels) == old_nodes - new_nodes

    text = "".join(iter_dynamic_gexf((store.load_graph(tmp_path, x) for x in (a, b)),
                                     [str(j) for j in jobs]))
    xmlschema.XMLSchema(DYNAMIC_XSD).validate(io.StringIO(text))
    spells = {n.get("label"): _spells(n) for n in ET.fromstring(text).iterfind(".//g:node", NS)}
    assert {u for u, s in spells.items() if s == [(1, 1)]} == old_nodes - new_nodes
    assert {u for u, s in spells.items() if s == [(2, 2)]} == new_nodes - old_nodes
    assert {u for u, s in spells.items() if s == [(1, 2)]} == old_nodes & new_nodes


@pytest.mark.slow
def test_the_diff_of_a_crawl_and_its_recrawl_is_the_sites_change(
        mock_server, database_url, redis_url, tmp_path):
    """A site crawled, a version of it with pages removed, changed and added recrawled
    (conditionally, 304s carried over): the diff lists exactly the generator's changes."""
    from tests.test_recrawl import _crawl

    server = mock_server(pages=40, seed=5, links_per_page=4, conditional=True)
    origin, old = server.origin, server.site
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
    first = _crawl(database_url, redis_url, owner, server.start_url)
    server.configure(version=1)
    new = server.site
    second = _crawl(database_url, redis_url, owner, server.start_url, recrawl_of=first)
    request = GraphBuildRequest(metrics=["degree", "pagerank"])
    ids = [build_now(database_url, tmp_path, owner, [job], request) for job in (first, second)]
    with psycopg.connect(database_url) as conn:
        a, b = (store.get_build(conn, i) for i in ids)
    d = diff_builds(tmp_path, a, b, metric="in_degree", limit=10_000)

    def links(site) -> set[tuple[str, str]]:
        return {(origin + path, origin + link.target) for path, spec in site.pages.items()
                for link in spec.links if link.target != path}

    assert {(e.source, e.target) for e in d.edges.added_edges} \
        == links(new) - links(old) != set()
    assert {(e.source, e.target) for e in d.edges.removed_edges} \
        == links(old) - links(new) != set()
    assert d.edges.common == len(links(old) & links(new))
    assert set(d.nodes.added_labels) == new.page_urls(origin) - old.page_urls(origin) != set()
    assert set(d.nodes.removed_labels) == old.page_urls(origin) - new.page_urls(origin) != set()
    # The links moved, so in-degrees did.
    assert d.metric.movers and all(m.delta != 0 for m in d.metric.movers)
