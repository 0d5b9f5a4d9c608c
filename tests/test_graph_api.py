"""The graph routes of the job API: build, read, top nodes, exports, ownership and errors."""

from __future__ import annotations

import io
import uuid

import networkx as nx
import psycopg
import pytest
import xmlschema

from graphs.worker import Worker, WorkerConfig
from tests.api_fixtures import assert_error, login
from tests.graphdata import add_links, add_pages, make_job
from tests.test_graph_exports import GEXF_XSD

pytest_plugins = ["tests.api_fixtures"]

PAGES = [f"http://shop.test/{i}" for i in range(12)] + ["http://blog.test/", "http://blog.test/a"]
LINKS = [(PAGES[i], PAGES[(i * 5 + 1) % len(PAGES)], 1 + i % 3, False) for i in range(len(PAGES))]
LINKS += [(PAGES[i], "http://ext.test/", 1, True) for i in range(3)]


@pytest.fixture
def job(database_url, users):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job_id = make_job(conn, users["alice"])
        add_pages(conn, job_id, PAGES)
        add_links(conn, job_id, LINKS)
    return job_id


def _build(client, api_settings, job_id, headers, **body) -> dict:
    response = client.post(f"/api/v1/jobs/{job_id}/graphs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    build = response.json()
    assert build["status"] == "queued" and build["jobs"] == [str(job_id)]
    Worker(api_settings.database_url, api_settings.home,
           WorkerConfig(poll_seconds=0.1)).run(once=True)
    response = client.get(f"/api/v1/graphs/{build['id']}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_build_read_top_nodes_and_export(client, api_settings, users, job):
    alice = login(client, "alice")
    build = _build(client, api_settings, job, alice, level="page",
                   metrics=["degree", "pagerank", "components", "kcore"])
    assert build["status"] == "done", build
    assert build["node_count"] == len(PAGES) + 1
    assert build["edge_count"] == len({(s, t) for s, t, _, _ in LINKS if s != t})
    assert build["summary"]["components"]["weak"] >= 1

    top = client.get(f"/api/v1/graphs/{build['id']}/nodes",
                     params={"sort": "pagerank", "limit": 5}, headers=alice).json()
    ranks = [n["pagerank"] for n in top["nodes"]]
    assert len(ranks) == 5 and ranks == sorted(ranks, reverse=True)

    response = client.get(f"/api/v1/graphs/{build['id']}/export", params={"format": "gexf"},
                          headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/gexf+xml")
    assert "attachment" in response.headers["content-disposition"]
    xmlschema.XMLSchema(GEXF_XSD).validate(io.BytesIO(response.content))
    graph = nx.read_gexf(io.BytesIO(response.content))
    assert graph.number_of_nodes() == build["node_count"]
    for fmt in ("graphml", "json", "csv"):
        response = client.get(f"/api/v1/graphs/{build['id']}/export",
                              params={"format": fmt, "table": "edges"}, headers=alice)
        assert response.status_code == 200 and response.content, fmt


def test_host_level_build(client, api_settings, users, job):
    alice = login(client, "alice")
    build = _build(client, api_settings, job, alice, level="host", include_uncrawled=False)
    nodes = client.get(f"/api/v1/graphs/{build['id']}/nodes", params={"sort": "label",
                       "order": "asc"}, headers=alice).json()["nodes"]
    assert [n["label"] for n in nodes] == ["blog.test", "shop.test"]
    assert [n["pages"] for n in nodes] == [2, 12]


def test_redirects_fold_unless_the_build_says_not(client, api_settings, users, job,
                                                 database_url):
    # shop.test/0 links to http://shop.test/1, which 301s to shop.test/1/ (linked as well).
    moved, landed = "http://shop.test/moved", "http://shop.test/landed/"
    with psycopg.connect(database_url, autocommit=True) as conn:
        add_links(conn, job, [(PAGES[0], moved, 2, False), (PAGES[0], landed, 1, False)])
        conn.execute("INSERT INTO redirects (job_id, url, target_url, status) "
                     "VALUES (%s, %s, %s, 301)", (job, moved, landed))
    alice = login(client, "alice")
    folded = _build(client, api_settings, job, alice, metrics=["degree"])
    kept = _build(client, api_settings, job, alice, metrics=["degree"], fold_redirects=False)
    assert (folded["options"]["fold_redirects"], kept["options"]["fold_redirects"]) == (
        True, False)
    assert kept["node_count"] == folded["node_count"] + 1
    assert kept["summary"]["redirects_read"] == folded["summary"]["redirects_read"] == 1

    def edges(build):
        response = client.get(f"/api/v1/graphs/{build['id']}/export",
                              params={"format": "json"}, headers=alice)
        data = response.json()
        labels = {n["id"]: n["label"] for n in data["nodes"]}
        return {(labels[e["source"]], labels[e["target"]]): (e["weight"], e.get("redirect"))
                for e in data["links"] if labels[e["source"]] in (PAGES[0], moved)}

    assert edges(folded) == {(PAGES[0], landed): (3, None), (PAGES[0], PAGES[1]): (1, None),
                             (PAGES[0], "http://ext.test/"): (1, None)}
    assert edges(kept) == {(PAGES[0], landed): (1, False), (PAGES[0], moved): (2, False),
                           (moved, landed): (1, True), (PAGES[0], PAGES[1]): (1, False),
                           (PAGES[0], "http://ext.test/"): (1, False)}


def test_canonicals_fold_when_the_build_says_so(client, api_settings, users, job,
                                               database_url):
    variant = PAGES[2] + "/print"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, "
                     "discovered, canonical_url) VALUES (%s, %s, %s, 200, now(), 'link', %s)",
                     (job, variant, variant, PAGES[2]))
        add_links(conn, job, [(PAGES[0], variant, 1, False), (variant, PAGES[5], 1, False)])
    alice = login(client, "alice")
    kept = _build(client, api_settings, job, alice, metrics=["degree"])
    folded = _build(client, api_settings, job, alice, metrics=["degree"], fold_canonical=True)
    assert (kept["options"]["fold_canonical"], folded["options"]["fold_canonical"]) == (
        False, True)
    assert folded["node_count"] == kept["node_count"] - 1
    assert kept["summary"]["canonicals_read"] == folded["summary"]["canonicals_read"] == 1

    def nodes(build):
        response = client.get(f"/api/v1/graphs/{build['id']}/nodes",
                              params={"sort": "label", "order": "asc", "limit": 100},
                              headers=alice)
        return {n["label"]: n for n in response.json()["nodes"]}

    assert (nodes(kept)[variant]["canonical"], nodes(kept)[variant]["discovered"]) == (
        PAGES[2], "link")
    assert variant not in nodes(folded) and "canonical" not in nodes(folded)[PAGES[2]]
    assert nodes(folded)[PAGES[2]]["out_degree"] == nodes(kept)[PAGES[2]]["out_degree"] + 1


def test_unknown_metric_level_or_option_is_422(client, users, job):
    alice = login(client, "alice")
    for body, word in (({"metrics": ["pagerank", "fame"]}, "fame"),
                       ({"level": "planet"}, "planet"), ({"damping": 2}, "damping"),
                       ({"fold_redirects": "yes"}, "fold_redirects"),
                       ({"fold_canonical": "maybe"}, "fold_canonical")):
        response = client.post(f"/api/v1/jobs/{job}/graphs", json=body, headers=alice)
        assert word in assert_error(response, 422)["message"]


def test_unknown_or_another_users_job_is_404(client, users, job):
    bob = login(client, "bob")
    assert_error(client.post(f"/api/v1/jobs/{job}/graphs", json={}, headers=bob), 404)
    assert_error(client.post(f"/api/v1/jobs/{uuid.uuid4()}/graphs", json={},
                             headers=login(client, "alice")), 404)


def test_another_users_build_is_404_and_admin_sees_it(client, api_settings, users, job):
    alice = login(client, "alice")
    build = _build(client, api_settings, job, alice)
    bob = login(client, "bob")
    for path in ("", "/nodes", "/export"):
        assert_error(client.get(f"/api/v1/graphs/{build['id']}{path}", headers=bob), 404)
    root = login(client, "root")
    assert client.get(f"/api/v1/graphs/{build['id']}", headers=root).status_code == 200


def test_bad_sort_format_and_unfinished_build(client, api_settings, users, job):
    alice = login(client, "alice")
    build = _build(client, api_settings, job, alice, metrics=["degree"])
    assert_error(client.get(f"/api/v1/graphs/{build['id']}/nodes",
                            params={"sort": "pagerank"}, headers=alice), 422)
    assert_error(client.get(f"/api/v1/graphs/{build['id']}/nodes",
                            params={"sort": "password"}, headers=alice), 422)
    assert_error(client.get(f"/api/v1/graphs/{build['id']}/export",
                            params={"format": "pajek"}, headers=alice), 422)
    queued = client.post(f"/api/v1/jobs/{job}/graphs", json={}, headers=alice).json()
    assert_error(client.get(f"/api/v1/graphs/{queued['id']}/nodes", headers=alice), 409)


def test_job_with_no_links_builds_an_empty_graph(client, api_settings, users, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        empty = make_job(conn, users["alice"])
    alice = login(client, "alice")
    build = _build(client, api_settings, empty, alice)
    assert (build["status"], build["node_count"], build["edge_count"]) == ("done", 0, 0)
    response = client.get(f"/api/v1/graphs/{build['id']}/export", params={"format": "gexf"},
                          headers=alice)
    assert nx.read_gexf(io.BytesIO(response.content)).number_of_nodes() == 0


def test_graph_routes_are_in_the_openapi_schema(client):
    schema = client.get("/schema/openapi.json").json()
    for path in ("/api/v1/jobs/{job_id}/graphs", "/api/v1/graphs/{build_id}",
                 "/api/v1/graphs/{build_id}/nodes", "/api/v1/graphs/{build_id}/export"):
        assert path in schema["paths"], sorted(schema["paths"])
    assert "GraphBuildRequest" in str(schema["components"]["schemas"])
