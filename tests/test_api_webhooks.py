"""`/api/v1/webhooks` against the real API and PostgreSQL: create, list, delete, ownership,
the private-address guard, and the outbox rows the trigger adds when jobs end."""

from __future__ import annotations

import uuid

import psycopg

from tests.api_fixtures import assert_error, login
from tests.test_api_jobs import insert_job

pytest_plugins = ["tests.api_fixtures"]

PUBLIC = "https://8.8.8.8/crawlgraph-hook"


def _hook(client, headers, url: str = PUBLIC, **fields) -> dict:
    response = client.post("/api/v1/webhooks", json={"url": url, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _end(database_url: str, job_id: uuid.UUID, status: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status, job_id))


def _outbox(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT webhook_id, event, data->>'job_id' FROM webhook_deliveries "
                            "ORDER BY id").fetchall()


def test_create_shows_the_secret_once_and_lists_own_hooks(client, users):
    alice, bob, root = (login(client, n) for n in ("alice", "bob", "root"))
    made = _hook(client, alice)
    assert made["secret"].startswith("whsec_") and len(made["secret"]) >= 40
    assert made["owner_id"] == users["alice"] and made["schedule_id"] is None
    assert sorted(made["events"]) == sorted(["job.finished", "job.failed", "job.cancelled",
                                             "graph.done", "graph.failed"])
    listed = client.get("/api/v1/webhooks", headers=alice).json()
    assert [h["id"] for h in listed["items"]] == [made["id"]]
    assert "secret" not in listed["items"][0] and made["secret"] not in str(listed)
    assert client.get("/api/v1/webhooks", headers=bob).json()["items"] == []
    assert [h["id"] for h in client.get("/api/v1/webhooks", headers=root).json()["items"]] == \
        [made["id"]]
    assert_error(client.get(f"/api/v1/webhooks/{made['id']}/deliveries", headers=bob), 404)
    assert_error(client.delete(f"/api/v1/webhooks/{made['id']}", headers=bob), 404)
    assert client.get(f"/api/v1/webhooks/{made['id']}/deliveries",
                      headers=root).json()["items"] == []
    assert client.delete(f"/api/v1/webhooks/{made['id']}", headers=alice).status_code == 204
    assert client.get("/api/v1/webhooks", headers=alice).json()["items"] == []
    assert_error(client.delete(f"/api/v1/webhooks/{made['id']}", headers=alice), 404)


def test_private_and_non_http_urls_are_refused_with_a_clear_message(client, users):
    alice = login(client, "alice")
    for url, shown in (("http://10.0.0.5/hook", "10.0.0.5, a private address"),
                       ("http://169.254.169.254/latest", "a cloud metadata address"),
                       ("http://0x7f000001:8080/", "127.0.0.1, a loopback address"),
                       ("http://localhost:8080/hook", "a loopback address")):
        response = client.post("/api/v1/webhooks", json={"url": url}, headers=alice)
        error = assert_error(response, 422, field="url")
        assert shown in error["message"], error
        assert "ALLOW_PRIVATE_NETWORKS=1" in error["hint"]
    for url, shown in (("ftp://8.8.8.8/hook", "http(s)"), ("https:///nohost", "http(s)"),
                       ("https://me:pw@8.8.8.8/", "user name or password")):
        error = assert_error(client.post("/api/v1/webhooks", json={"url": url},
                                         headers=alice), 422, field="url")
        assert shown in error["message"], error
    assert_error(client.post("/api/v1/webhooks", json={"url": PUBLIC, "events": ["job.bogus"]},
                             headers=alice), 422, field="events[0]")
    assert client.get("/api/v1/webhooks", headers=alice).json()["items"] == []


def test_ending_jobs_fill_the_outbox_of_matching_hooks_only(client, users, database_url):
    alice, bob = login(client, "alice"), login(client, "bob")
    everything = _hook(client, alice)
    finished_only = _hook(client, alice, events=["job.finished"])
    _hook(client, bob)
    a = insert_job(database_url, users["alice"])
    b = insert_job(database_url, users["alice"])
    _end(database_url, a, "finished")
    _end(database_url, a, "finished")  # no change of status, no event
    _end(database_url, b, "paused")  # not an end
    _end(database_url, b, "failed")
    rows = _outbox(database_url)
    assert sorted((str(w), e, j) for w, e, j in rows) == sorted([
        (everything["id"], "job.finished", str(a)), (finished_only["id"], "job.finished", str(a)),
        (everything["id"], "job.failed", str(b))])
    shown = client.get(f"/api/v1/webhooks/{everything['id']}/deliveries", headers=alice).json()
    assert [(d["event"], d["state"], d["attempts"]) for d in shown["items"]] == \
        [("job.failed", "pending", 0), ("job.finished", "pending", 0)]
    page = client.get(f"/api/v1/webhooks/{everything['id']}/deliveries?limit=1",
                      headers=alice).json()
    rest = client.get(f"/api/v1/webhooks/{everything['id']}/deliveries?limit=1&cursor="
                      f"{page['next_cursor']}", headers=alice).json()
    assert [d["id"] for d in page["items"] + rest["items"]] == \
        [d["id"] for d in shown["items"]] and rest["next_cursor"] is None


def test_a_schedule_hook_gets_only_that_schedules_jobs(client, users, database_url):
    alice, bob = login(client, "alice"), login(client, "bob")
    schedule = client.post("/api/v1/schedules", headers=alice, json={
        "name": "nightly", "cron": "0 3 * * *", "job": {"start_urls": [PUBLIC]}}).json()
    error = assert_error(client.post("/api/v1/webhooks", headers=bob, json={
        "url": PUBLIC, "schedule_id": schedule["id"]}), 422, field="schedule_id")
    assert "no schedule" in error["message"]
    hook = _hook(client, alice, schedule_id=schedule["id"], events=["job.cancelled"])
    in_series, other = insert_job(database_url, users["alice"]), \
        insert_job(database_url, users["alice"])
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET schedule_id = %s WHERE id = %s",
                     (schedule["id"], in_series))
    _end(database_url, other, "cancelled")
    _end(database_url, in_series, "cancelled")
    assert [(str(w), e, j) for w, e, j in _outbox(database_url)] == \
        [(hook["id"], "job.cancelled", str(in_series))]
    # Deleting the schedule deletes its hooks.
    assert client.delete(f"/api/v1/schedules/{schedule['id']}", headers=alice).status_code == 204
    assert client.get("/api/v1/webhooks", headers=alice).json()["items"] == []
