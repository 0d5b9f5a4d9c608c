"""`GET /api/v1/graphs/{id}/drawing`: a finished build in the console's compact shape, every
node when it fits, else the top nodes by PageRank and the edges among them."""

from __future__ import annotations

import psycopg

from graphs.worker import Worker, WorkerConfig
from tests.api_fixtures import assert_error, login
from tests.graphdata import add_links
from tests.test_api_jobs import insert_job

pytest_plugins = ["tests.api_fixtures"]

# A small directed graph: a hub everyone links to, a chain, and an isolated page.
PAGES = [f"https://d.example/{name}" for name in ("hub", "a", "b", "c", "d", "lone")]
LINKS = [("a", "hub"), ("b", "hub"), ("c", "hub"), ("d", "hub"), ("hub", "a"), ("a", "b"),
         ("b", "c")]


def _build(client, api_settings, database_url, users) -> tuple[dict, str]:
    job = insert_job(database_url, users["alice"], status="finished")
    with psycopg.connect(database_url) as conn:
        for url in PAGES:
            conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at) "
                         "VALUES (%s, %s, %s, 200, now())", (job, url, url))
        add_links(conn, job, [(f"https://d.example/{a}", f"https://d.example/{b}", 1, False, "x")
                              for a, b in LINKS])
    alice = login(client, "alice")
    response = client.post(f"/api/v1/jobs/{job}/graphs", json={"level": "page"}, headers=alice)
    assert response.status_code == 202, response.text
    build = response.json()["id"]
    Worker(api_settings.database_url, api_settings.home,
           WorkerConfig(poll_seconds=0.1)).run(once=True)
    return alice, build


def test_the_drawing_holds_every_node_and_edge(client, api_settings, database_url, users):
    alice, build = _build(client, api_settings, database_url, users)
    meta = client.get(f"/api/v1/graphs/{build}", headers=alice).json()
    drawing = client.get(f"/api/v1/graphs/{build}/drawing", headers=alice)
    assert drawing.status_code == 200, drawing.text
    body = drawing.json()
    assert body["truncated"] is False
    assert body["node_count"] == meta["node_count"] == len(body["labels"]) == len(PAGES)
    assert sorted(body["labels"]) == sorted(PAGES)
    label = body["labels"]
    pairs = {(label[body["edges"][i]], label[body["edges"][i + 1]])
             for i in range(0, len(body["edges"]), 2)}
    assert pairs == {(f"https://d.example/{a}", f"https://d.example/{b}") for a, b in LINKS}
    assert body["edge_count"] == meta["edge_count"] == len(LINKS)
    for column in ("pagerank", "in_degree", "out_degree", "kcore", "component"):
        assert len(body["columns"][column]) == len(PAGES), column
    hub = label.index("https://d.example/hub")
    assert body["columns"]["in_degree"][hub] == 4


def test_a_large_graph_is_cut_to_its_top_nodes_by_pagerank(client, api_settings, database_url,
                                                            users):
    alice, build = _build(client, api_settings, database_url, users)
    top = client.get(f"/api/v1/graphs/{build}/nodes", params={"sort": "pagerank", "limit": 3},
                     headers=alice).json()["nodes"]
    body = client.get(f"/api/v1/graphs/{build}/drawing", params={"limit": 3},
                      headers=alice).json()
    assert body["truncated"] is True and body["ranked_by"] == "pagerank"
    assert body["node_count"] == len(PAGES)
    assert sorted(body["labels"]) == sorted(n["label"] for n in top)
    kept = set(body["labels"])
    label = body["labels"]
    pairs = {(label[body["edges"][i]], label[body["edges"][i + 1]])
             for i in range(0, len(body["edges"]), 2)}
    assert pairs == {(f"https://d.example/{a}", f"https://d.example/{b}") for a, b in LINKS
                     if f"https://d.example/{a}" in kept and f"https://d.example/{b}" in kept}


def test_the_limit_is_bounded_and_another_users_build_is_404(client, api_settings, database_url,
                                                              users):
    alice, build = _build(client, api_settings, database_url, users)
    assert_error(client.get(f"/api/v1/graphs/{build}/drawing", params={"limit": 0},
                            headers=alice), 422)
    assert_error(client.get(f"/api/v1/graphs/{build}/drawing", params={"limit": 50_001},
                            headers=alice), 422)
    assert_error(client.get(f"/api/v1/graphs/{build}/drawing", headers=login(client, "bob")),
                 404, "not_found")


def test_the_drawing_is_in_the_openapi_document(client):
    doc = client.get("/schema/openapi.json")
    assert doc.status_code == 200, doc.text
    operation = doc.json()["paths"]["/api/v1/graphs/{build_id}/drawing"]["get"]
    assert operation["operationId"] == "getGraphDrawing"
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 50_000)
