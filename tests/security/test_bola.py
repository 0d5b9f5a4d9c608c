"""Scenario 13: BOLA. User B gets 404 for every route on user A's jobs and graphs.

The routes are read from the app's route table: every route with a `job_id`
or `build_id` parameter is called by B with A's ids (each export format, the
event stream, the graph build request, and a build of B's own job that
names A's job in `extra_jobs`). The same calls by A are answered (not 404),
so the 404 comes from ownership, not from a missing row, and B's 404 reads
exactly like the 404 of an id that does not exist: no existence oracle.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from graphs.worker import Worker, WorkerConfig
from tests.api_fixtures import assert_error, login
from tests.security.routetable import Operation, fill, operations
from tests.test_api_jobs import insert_job, insert_pages

pytest_plugins = ["tests.api_fixtures"]

# The request each id-taking operation is called with: (query params, JSON body) variants.
CALLS: dict[str, list[tuple[dict, dict | None]]] = {
    "getJob": [({}, None)],
    "getJobSummary": [({}, None)],
    "getJobLog": [({}, None)],
    "cancelJob": [({}, None)],
    "deleteJob": [({}, None)],
    "deleteGraphBuild": [({}, None)],
    "listJobPages": [({}, None), ({"status": 200}, None)],
    "listJobErrors": [({}, None)],
    "listJobLinks": [({}, None)],
    "listJobItems": [({}, None), ({"item_type": "Product"}, None)],
    "streamJobEvents": [({}, None)],
    "createGraphBuild": [({}, {"level": "page"})],
    "getGraphBuild": [({}, None)],
    "listGraphNodes": [({}, None), ({"sort": "pagerank", "limit": 5}, None)],
    "getGraphDrawing": [({}, None), ({"limit": 2}, None)],
    "exportGraph": [({"format": f, "table": t}, None) for f, t in (
        ("graphml", "nodes"), ("gexf", "nodes"), ("json", "nodes"), ("csv", "nodes"),
        ("csv", "edges"))],
    "diffGraphBuilds": [({}, None), ({"format": "csv", "metric": "in_degree"}, None)],
    "listJobWarcs": [({}, None)],
    "getJobWarc": [({}, None)],
}
OWNED_PARAMS = {"job_id", "build_id"}
# A's own deletions take the job and build away: A calls them last.
DELETIONS = ("deleteGraphBuild", "deleteJob")


def _owned_operations(app) -> list[Operation]:
    ops = [op for op in operations(app) if OWNED_PARAMS & set(op.params)]
    missing = [str(op) for op in ops if op.operation_id not in CALLS]
    assert not missing, f"new routes on jobs or graphs: add them to CALLS: {missing}"
    return ops


@pytest.fixture
def a_and_b(client, api_settings, users, database_url):
    """A's finished job with pages, links and items, and A's finished graph build of it."""
    job_a = insert_job(database_url, users["alice"], status="finished", tags=("a-only",))
    insert_pages(database_url, job_a, [(f"https://a.example/{i}", 200) for i in range(4)])
    job_b = insert_job(database_url, users["bob"], status="finished")
    insert_pages(database_url, job_b, [("https://b.example/", 200)])
    with psycopg.connect(database_url) as conn:  # a WARC file of A's job, on another node
        conn.execute("INSERT INTO warc_files (job_id, name, node, worker, bytes, records, "
                     "closed_at) VALUES (%s, %s, 'elsewhere', 'w', 10, 1, now())",
                     (job_a, f"{job_a}-w-00001.warc.gz"))
    alice = login(client, "alice")
    response = client.post(f"/api/v1/jobs/{job_a}/graphs", json={"level": "page"},
                           headers=alice)
    assert response.status_code == 202, response.text
    build_a = response.json()["id"]
    Worker(api_settings.database_url, api_settings.home,
           WorkerConfig(poll_seconds=0.1)).run(once=True)
    assert client.get(f"/api/v1/graphs/{build_a}", headers=alice).json()["status"] == "done"
    return {"alice": alice, "bob": login(client, "bob"), "job_a": job_a, "job_b": job_b,
            "build_a": build_a}


def _builds(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM graph_builds").fetchone()[0]


@pytest.mark.scenario(13, done="user B calls every route with a job_id or build_id (from the "
                               "route table) on user A's job and graph build, each export "
                               "format, the event stream, extra_jobs",
                      checked="each 404, worded like the 404 of an id that does not exist; "
                              "A gets answers on the same calls; nothing of A's changes")
def test_user_b_gets_404_on_every_route_of_user_as_jobs_and_graphs(client, a_and_b,
                                                                   database_url):
    ctx = a_and_b
    ours = {"job_id": ctx["job_a"], "build_id": ctx["build_a"]}
    nobody = {"job_id": uuid.uuid4(), "build_id": uuid.uuid4()}
    builds_before = _builds(database_url)
    calls = 0
    for op in _owned_operations(client.app):
        for params, body in CALLS[op.operation_id]:
            as_b = client.request(op.method, fill(op.path, ours), params=params, json=body,
                                  headers=ctx["bob"])
            error = assert_error(as_b, 404, "not_found")
            unknown = client.request(op.method, fill(op.path, nobody), params=params, json=body,
                                     headers=ctx["bob"])
            other = assert_error(unknown, 404, "not_found")
            for name in OWNED_PARAMS & set(op.params):
                error["message"] = error["message"].replace(str(ours[name]), "<id>")
                other["message"] = other["message"].replace(str(nobody[name]), "<id>")
            assert (error["message"], error["hint"]) == (other["message"], other["hint"]), op
            calls += 1
    assert calls >= 17
    # The graph build request of B's own job may not pull in A's job.
    sneaky = client.post(f"/api/v1/jobs/{ctx['job_b']}/graphs",
                         json={"level": "page", "extra_jobs": [str(ctx["job_a"])]},
                         headers=ctx["bob"])
    assert_error(sneaky, 404, "not_found")
    assert _builds(database_url) == builds_before
    # B's listings do not show A's job.
    listed = client.get("/api/v1/jobs", params={"tag": "a-only"}, headers=ctx["bob"]).json()
    assert listed["items"] == []
    assert [j["id"] for j in client.get("/api/v1/jobs", headers=ctx["bob"]).json()["items"]] \
        == [str(ctx["job_b"])]
    with psycopg.connect(database_url) as conn:
        status, deleted = conn.execute("SELECT status, deleted_at FROM jobs WHERE id = %s",
                                       (ctx["job_a"],)).fetchone()
    assert status == "finished" and deleted is None  # B's cancel and delete did nothing


@pytest.mark.scenario(13, done="user A makes the same calls on their own job and build",
                      checked="none is 404 or 5xx (the 404s above come from ownership)")
def test_user_a_is_answered_on_the_same_routes(client, a_and_b):
    ctx = a_and_b
    ours = {"job_id": ctx["job_a"], "build_id": ctx["build_a"]}
    ops = {op.operation_id: op for op in _owned_operations(client.app)}
    for op in ops.values():
        if op.operation_id in DELETIONS:
            continue
        for params, body in CALLS[op.operation_id]:
            response = client.request(op.method, fill(op.path, ours), params=params, json=body,
                                      headers=ctx["alice"])
            # 409: a finished job cannot be cancelled; that is still an answer about it.
            assert response.status_code in (200, 202, 409), (str(op), params, response.text)
    for name in DELETIONS:
        response = client.request(ops[name].method, fill(ops[name].path, ours),
                                  headers=ctx["alice"])
        assert response.status_code == 202, (name, response.text)


@pytest.mark.scenario(13, done="user B changes user A's account (PATCH /users/{A})",
                      checked="403, and A's account is unchanged")
def test_user_b_cannot_change_user_as_account(client, users, database_url):
    bob = login(client, "bob")
    for body in ({"disabled": True}, {"role": "admin"}, {"password": "bob-chose-this"}):
        assert_error(client.patch(f"/api/v1/users/{users['alice']}", json=body, headers=bob),
                     403, "forbidden")
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT role, disabled FROM users WHERE id = %s",
                           (users["alice"],)).fetchone()
    assert row == ("user", False)
    login(client, "alice")  # the password still works
