"""Job API: validation of submissions, ownership, listings, pagination, SSE events.

Scheduling on scrapyd (idempotency, scrapyd down, cancel) is in test_api_scrapyd.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import uvicorn

from jobapi.app import create_app
from tests.api_fixtures import assert_error, login
from tests.conftest import free_port
from tests.graphdata import add_links

pytest_plugins = ["tests.api_fixtures"]


def insert_job(database_url: str, owner_id: int, *, status: str = "running",
               spider: str = "site", tags: tuple[str, ...] = (), created_at=None) -> uuid.UUID:
    job_id = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO jobs (id, owner_id, spider, status, params, tags, created_at, stats) "
            "VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s)",
            (job_id, owner_id, spider, status, json.dumps({"start_urls": ["https://a.example/"]}),
             list(tags), created_at, json.dumps({"pages": 3})),
        )
    return job_id


def insert_pages(database_url: str, job_id: uuid.UUID, rows: list[tuple[str, int]]) -> None:
    with psycopg.connect(database_url) as conn:
        for url, status in rows:
            conn.execute(
                "INSERT INTO pages (job_id, url, final_url, status, fetched_at, error) "
                "VALUES (%s, %s, %s, %s, now(), %s)",
                (job_id, url, url, status, "timeout" if status == 0 else None),
            )
            add_links(conn, job_id, [(url, url + "next", 1, False, "next")])
            conn.execute(
                "INSERT INTO items (job_id, fingerprint, item_type, url, data) "
                "VALUES (%s, %s, 'Product', %s, %s)",
                (job_id, f"fp-{url}", url, json.dumps({"name": url})),
            )


# --- validation ---------------------------------------------------------------


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"start_urls": ["ftp://example.org/"]}, "start_urls[0]", "regex"),
    ({"start_urls": ["https://example.org/", "not a url"]}, "start_urls[1]", "regex"),
    ({"start_urls": []}, "start_urls", "length"),
    ({"start_urls": ["https://example.org/"], "colour": "red"}, "colour", "unknown field"),
    ({"start_urls": ["https://example.org/"], "workers": 65}, "workers", "<= 64"),
    ({"start_urls": ["https://example.org/"], "max_pages": 0}, "max_pages", ">= 1"),
    ({"start_urls": ["https://example.org/"], "settings": {"ITEM_PIPELINES": "x"}},
     "settings.ITEM_PIPELINES", "not a setting"),
    ({"start_urls": ["https://example.org/"], "settings": {"DOWNLOAD_DELAY": 600}},
     "settings.DOWNLOAD_DELAY", "from 0.0 to 60.0"),
    ({"start_urls": ["https://example.org/"], "include": ["("]}, "include[0]",
     "regular expression"),
    ({"start_urls": ["https://example.org/"], "spider": "no_such_spider"}, "spider",
     "no spider"),
])
def test_invalid_submissions_are_422_naming_the_field(client, users, body, field, words):
    headers = login(client, "alice")
    error = assert_error(client.post("/api/v1/jobs", json=body, headers=headers), 422,
                         "validation_error", field=field)
    assert words in error["message"], error


def test_a_pattern_is_said_in_words_before_the_regex(client, users):
    headers = login(client, "alice")
    error = assert_error(client.post("/api/v1/jobs", json={"start_urls": ["ftp://example.org/"]},
                                     headers=headers), 422, "validation_error",
                         field="start_urls[0]")
    assert error["message"].startswith(
        "start_urls[0]: expected an absolute http or https URL (matching regex '^[hH]"), error
    error = assert_error(client.post("/api/v1/jobs", json={
        "start_urls": ["https://example.org/"], "tags": ["no spaces please"]}, headers=headers),
        422, "validation_error", field="tags[0]")
    assert error["message"].startswith("tags[0]: expected letters, digits and `_ . : -` only"), \
        error


def test_10001_urls_are_refused(client, users):
    headers = login(client, "alice")
    urls = [f"https://example.org/{i}" for i in range(10_001)]
    error = assert_error(client.post("/api/v1/jobs", json={"start_urls": urls}, headers=headers),
                         422, field="start_urls")
    assert "10000" in error["message"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/", "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/",
    "http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
    "http://[::ffff:10.0.0.1]/", "http://100.64.0.1/", "http://localhost:9/",
])
def test_private_addresses_are_refused_with_the_setting_named(client, users, database_url, url):
    headers = login(client, "alice")
    body = {"start_urls": ["https://example.org/", url]}
    error = assert_error(client.post("/api/v1/jobs", json=body, headers=headers), 422,
                         field="start_urls[1]")
    assert "ALLOW_PRIVATE_NETWORKS" in error["hint"]
    assert "points at" in error["message"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


def test_malformed_json_is_400(client, users):
    headers = login(client, "alice")
    response = client.post("/api/v1/jobs", content=b'{"start_urls": [', headers={
        **headers, "content-type": "application/json"})
    assert_error(response, 400)


# --- ownership -----------------------------------------------------------------------


def test_another_users_job_is_404_for_every_verb(client, users, database_url):
    job_id = insert_job(database_url, users["alice"])
    bob = login(client, "bob")
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("GET", "/pages"),
                           ("GET", "/links"), ("GET", "/items"), ("GET", "/errors"),
                           ("GET", "/events")):
        response = client.request(method, f"/api/v1/jobs/{job_id}{suffix}", headers=bob)
        assert_error(response, 404, "not_found")
    assert client.get("/api/v1/jobs", headers=bob).json()["items"] == []
    alice = login(client, "alice")
    assert client.get(f"/api/v1/jobs/{job_id}", headers=alice).json()["id"] == str(job_id)
    admin = login(client, "root")
    assert client.get(f"/api/v1/jobs/{job_id}", headers=admin).status_code == 200
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM jobs WHERE id = %s",
                            (job_id,)).fetchone()[0] == "running"


def test_unknown_job_is_404_and_bad_id_is_4xx(client, users):
    headers = login(client, "alice")
    assert_error(client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=headers), 404)
    response = client.get("/api/v1/jobs/not-a-uuid", headers=headers)
    assert response.status_code in (400, 404)
    assert set(response.json()) == {"error"}


# --- listings ---------------------------------------------------------------------


def test_list_jobs_newest_first_with_cursor_and_filters(client, users, database_url):
    base = datetime.now(UTC) - timedelta(hours=1)
    ids = [insert_job(database_url, users["alice"], created_at=base + timedelta(minutes=i),
                      status="finished" if i % 2 else "running", tags=("t1",) if i < 3 else ())
           for i in range(7)]
    insert_job(database_url, users["bob"])
    headers = login(client, "alice")
    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/jobs", params=params, headers=headers).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(ids)]
    finished = client.get("/api/v1/jobs", params={"status": "finished"}, headers=headers).json()
    assert {j["id"] for j in finished["items"]} == {str(ids[i]) for i in (1, 3, 5)}
    tagged = client.get("/api/v1/jobs", params={"tag": "t1"}, headers=headers).json()
    assert {j["id"] for j in tagged["items"]} == {str(ids[i]) for i in range(3)}
    admin = login(client, "root")
    assert len(client.get("/api/v1/jobs", headers=admin).json()["items"]) == 8
    assert_error(client.get("/api/v1/jobs", params={"cursor": "garbage!"}, headers=headers),
                 422, field="cursor")
    assert_error(client.get("/api/v1/jobs", params={"cursor": "Z2FyYmFnZQ"}, headers=headers),
                 400, field="cursor")
    assert_error(client.get("/api/v1/jobs", params={"limit": 0}, headers=headers), 422,
                 field="limit")
    assert_error(client.get("/api/v1/jobs", params={"status": "lost"}, headers=headers), 422,
                 field="status")


def test_get_job_has_live_frontier_counters(client, users, database_url, redis_url):
    from tests.test_frontier_queue import BlockingFrontier

    job_id = insert_job(database_url, users["alice"])
    BlockingFrontier(redis_url, str(job_id)).seed(["https://a.example/1", "https://a.example/2"])
    job = client.get(f"/api/v1/jobs/{job_id}", headers=login(client, "alice")).json()
    assert job["frontier"]["queued"] == 2
    assert job["stats"] == {"pages": 3}


def test_pages_links_items_errors_with_filters_and_cursor(client, users, database_url):
    job_id = insert_job(database_url, users["alice"])
    rows = [(f"https://a.example/p{i:02d}", 200) for i in range(5)]
    rows += [("https://a.example/missing", 404), ("https://b.example/down", 0)]
    insert_pages(database_url, job_id, rows)
    headers = login(client, "alice")
    base = f"/api/v1/jobs/{job_id}"
    urls, cursor = [], None
    for _ in range(10):
        page = client.get(f"{base}/pages", params={"limit": 2, **({"cursor": cursor} if cursor
                                                                 else {})},
                          headers=headers).json()
        urls += [p["url"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert urls == sorted(url for url, _ in rows)
    by_status = client.get(f"{base}/pages", params={"status": 404}, headers=headers).json()
    assert [p["url"] for p in by_status["items"]] == ["https://a.example/missing"]
    by_prefix = client.get(f"{base}/pages", params={"url_prefix": "https://b.example/"},
                           headers=headers).json()
    assert [p["url"] for p in by_prefix["items"]] == ["https://b.example/down"]
    wildcard = client.get(f"{base}/pages", params={"url_prefix": "https://a.example/p_"},
                          headers=headers).json()
    assert wildcard["items"] == []  # `_` is a character, not a LIKE wildcard
    errors = client.get(f"{base}/errors", headers=headers).json()
    assert {p["url"] for p in errors["items"]} == {"https://a.example/missing",
                                                   "https://b.example/down"}
    links = client.get(f"{base}/links", params={"url_prefix": "https://a.example/p0",
                                                "limit": 50}, headers=headers).json()
    assert len(links["items"]) == 5 and links["items"][0]["anchor_text"] == "next"
    items = client.get(f"{base}/items", params={"item_type": "Product", "limit": 3},
                       headers=headers).json()
    assert len(items["items"]) == 3 and items["next_cursor"]
    assert items["items"][0]["data"]["name"].startswith("https://")


# --- events ------------------------------------------------------------------------------


@contextlib.contextmanager
def live_api(settings) -> Iterator[str]:
    """The API in uvicorn in a thread: unlike the TestClient, it streams a response
    while it is being produced. Yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, ws="none",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_events_stream_state_changes_until_the_job_ends(api_settings, users, database_url):
    job_id = insert_job(database_url, users["alice"])

    def change(sql: str) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(sql, (job_id,))

    # Each change is made once the stream has shown the state before it, so none can
    # come before the first event or between two polls, however slow the machine.
    changes = iter([
        "UPDATE jobs SET stats = '{\"pages\": 9}' WHERE id = %s",
        "UPDATE jobs SET status = 'finished', close_reason = 'finished' WHERE id = %s",
    ])
    events = []
    with live_api(api_settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        headers = login(http, "alice")
        with http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():  # ends after the finished state
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    assert len(events) <= 3, events
                    if (sql := next(changes, None)) is not None:
                        change(sql)
    assert [(e["status"], e["stats"], e["close_reason"]) for e in events] == [
        ("running", {"pages": 3}, None), ("running", {"pages": 9}, None),
        ("finished", {"pages": 9}, "finished")]


# --- users, spiders, metrics -----------------------------------------------------------------


def test_users_admin_only(client, users):
    alice = login(client, "alice")
    assert_error(client.get("/api/v1/users", headers=alice), 403, "forbidden")
    assert_error(client.post("/api/v1/users", json={"username": "eve", "password": "x" * 10},
                             headers=alice), 403)
    admin = login(client, "root")
    created = client.post("/api/v1/users", json={"username": "eve", "password": "x" * 10},
                          headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "user" and "password" not in created.text
    assert_error(client.post("/api/v1/users", json={"username": "eve", "password": "y" * 10},
                             headers=admin), 409, field="username")
    listed = client.get("/api/v1/users", headers=admin).json()["items"]
    assert {"root", "alice", "bob", "eve"} <= {u["username"] for u in listed}
    promoted = client.patch(f"/api/v1/users/{created.json()['id']}", json={"role": "admin"},
                            headers=admin)
    assert promoted.json()["role"] == "admin"
    assert_error(client.patch("/api/v1/users/999999", json={"disabled": True}, headers=admin),
                 404)
    assert_error(client.patch(f"/api/v1/users/{users['root']}", json={"disabled": True},
                              headers=admin), 409)
    assert_error(client.post("/api/v1/users", json={"username": "bad name!", "password":
                                                    "x" * 10}, headers=admin), 422,
                 field="username")


def test_every_crawl_argument_says_what_it_does(client, users):
    headers = login(client, "alice")
    (site,) = [s for s in client.get("/api/v1/spiders", headers=headers).json()["items"]
               if s["name"] == "site"]
    helps = {a["name"]: a["help"] for a in site["arguments"]}
    # Every crawl parameter a person sets (the job id is the API's own).
    assert {name for name, text in helps.items() if not text} == {"job_id"}
    assert helps["warc"] == "Archive every request and response as WARC files."


def test_spiders_and_metrics(client, users):
    headers = login(client, "alice")
    spiders = client.get("/api/v1/spiders", headers=headers)
    assert spiders.status_code == 200, spiders.text
    for spider in spiders.json()["items"]:
        assert spider["name"] and isinstance(spider["arguments"], list)
    metrics = client.get("/metrics", headers=headers)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'crawlgraph_jobs{status="running"} 0' in text
    assert 'crawlgraph_service_up{service="postgres"} 1' in text
    assert 'crawlgraph_api_requests_total{method="GET",route="/api/v1/spiders",status="200"} 1' \
        in text


def test_health_degraded_when_scrapyd_is_down(api_settings, users):
    import msgspec

    from tests.api_fixtures import make_client
    from tests.test_api_scrapyd import _closed_port

    down = msgspec.structs.replace(
        api_settings, scrapyd_urls=(f"http://u:pw@127.0.0.1:{_closed_port()}",))
    with make_client(down) as client:
        live = client.get("/health")
        assert live.status_code == 200 and live.json()["status"] == "degraded"
        ready = client.get("/api/v1/health")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["postgres"]["ok"] and checks["redis"]["ok"]
        assert not checks["scrapyd[0]"]["ok"] and "cannot be reached" in checks["scrapyd[0]"][
            "detail"]
        assert "pw@" not in ready.text


def test_job_submissions_are_rate_limited_per_user(api_settings, users):
    from jobapi.ratelimit import Limit, RateLimits
    from tests.api_fixtures import make_client

    with make_client(api_settings, rate_limits=RateLimits(jobs_per_user=Limit(2, 3600))) as client:
        alice, bob = login(client, "alice"), login(client, "bob")
        body = {"start_urls": ["http://10.0.0.1/"]}  # refused after counting: no crawl starts
        for _ in range(2):
            assert_error(client.post("/api/v1/jobs", json=body, headers=alice), 422)
        limited = client.post("/api/v1/jobs", json=body, headers=alice)
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert_error(client.post("/api/v1/jobs", json=body, headers=bob), 422)


def test_nul_and_control_characters_are_422_never_500(client, users, database_url):
    import base64

    job_id = insert_job(database_url, users["alice"])
    headers = login(client, "alice")
    for url, params, field in (
            (f"/api/v1/jobs/{job_id}/pages", {"url_prefix": "https://a\x00"}, "url_prefix"),
            ("/api/v1/jobs", {"tag": "a\x00"}, "tag"),
            (f"/api/v1/jobs/{job_id}/items", {"item_type": "\x00"}, "item_type")):
        assert_error(client.get(url, params=params, headers=headers), 422, field=field)
    for body, field in (({"start_urls": ["http://a.example/\x00"]}, "start_urls[0]"),
                        ({"start_urls": ["http://a.example/"], "include": ["a\x00"]},
                         "include[0]")):
        assert_error(client.post("/api/v1/jobs", json=body, headers=headers), 422, field=field)
    # A cursor that decodes to a NUL: the database refuses it, the answer is still a 422.
    cursor = base64.urlsafe_b64encode(b'["\\u0000"]').decode().rstrip("=")
    assert_error(client.get(f"/api/v1/jobs/{job_id}/pages", params={"cursor": cursor},
                            headers=headers), 422, "validation_error")


def test_spider_args_fit_a_command_line():
    from jobapi.errors import Unprocessable
    from jobapi.services.spiderargs import MAX_START_URLS_ARG, spider_args

    small = spider_args("j", {"start_urls": ["https://a.example/"], "max_depth": 2,
                              "max_pages": None, "obey_robots": True, "render_js": "never"})
    assert small == {"job_id": "j", "start_urls": '["https://a.example/"]', "max_depth": "2",
                     "obey_robots": "true", "render_js": "never"}
    urls = [f"https://h{i % 40}.example.org/a/fairly/long/path/{i}" for i in range(10_000)]
    big = spider_args("j", {"start_urls": urls, "allowed_domains": []})
    assert big["start_urls"] == "[]"
    assert json.loads(big["allowed_domains"]) == sorted({f"h{i}.example.org" for i in range(40)})
    assert all(len(v) <= MAX_START_URLS_ARG for v in big.values())
    given = spider_args("j", {"start_urls": urls, "allowed_domains": ["example.org"]})
    assert json.loads(given["allowed_domains"]) == ["example.org"]
    many_hosts = [f"https://host-{i}-with-a-long-name.example.org/" for i in range(10_000)]
    with pytest.raises(Unprocessable) as caught:
        spider_args("j", {"start_urls": many_hosts, "allowed_domains": []})
    assert caught.value.field == "start_urls"


def test_max_pages_is_shared_between_the_workers():
    from jobapi.services.spiderargs import spider_args

    assert spider_args("j", {"max_pages": 10}, workers=3)["max_pages"] == "4"
    assert spider_args("j", {"max_pages": 10}, workers=1)["max_pages"] == "10"
