"""Migration 0023 converts links stored by URL text into links by URL id, in place:
each page's links one row of `outlinks`.

A database at the schema before it holds pages and links of two jobs (URLs
with queries, fragments' escapes and non-ASCII, a URL both jobs link to, anchor
texts, counts, nofollow) and a graph build queued for each. After the
upgrade, the API lists each job's links exactly as they were stored, in URL
order and page by page, and each build's graph holds exactly those links.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from core.migrate import load_migrations, upgrade
from graphs.worker import Worker, WorkerConfig
from tests.api_fixtures import add_user, login, make_client
from tests.test_api_jobs import insert_job

pytest_plugins = ["tests.api_fixtures"]

FIRST_BY_ID = 23
SHARED = "https://shared.example/"
JOBS = {
    "a": [(f"https://a.example/p/{i}", f"https://a.example/p/{(i * 7) % 30}?q={i}&x=%20",
           1 + i % 3, f"anchor {i}", i % 5 == 0) for i in range(30)]
         + [("https://a.example/p/1", SHARED, 1, "", False),
            ("https://a.example/p/2", "https://a.example/caf%C3%A9/é", 2, "café", True)],
    "b": [(f"https://b.example/{i}", f"https://b.example/{i + 1}", 1, "next", False)
          for i in range(12)] + [("https://b.example/0", SHARED, 4, "out", True)],
}


def _old_schema(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    old = tmp_path / "migrations"
    old.mkdir()
    for migration in load_migrations():
        if migration.version < FIRST_BY_ID:
            (old / migration.name).write_text(migration.sql)
    upgrade(database_url, old)


def _store_by_text(database_url: str, job, links) -> None:
    with psycopg.connect(database_url) as conn:
        pages = sorted({source for source, *_ in links})
        conn.cursor().executemany(
            "INSERT INTO pages (job_id, url, final_url, status, fetched_at) "
            "VALUES (%s, %s, %s, 200, now())", [(job, url, url) for url in pages])
        conn.cursor().executemany(
            "INSERT INTO links (job_id, source_url, target_url, count, anchor_text, nofollow) "
            "VALUES (%s, %s, %s, %s, %s, %s)", [(job, *link) for link in links])


def _listed(client, headers, job) -> list[tuple]:
    rows, cursor = [], None
    for _ in range(20):
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/api/v1/jobs/{job}/links", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        rows += [(x["source_url"], x["target_url"], x["count"], x["anchor_text"], x["nofollow"])
                 for x in body["items"]]
        cursor = body.get("next_cursor")
        if not cursor:
            return rows
    raise AssertionError("the listing did not end")


def test_links_by_text_become_links_by_id(api_settings, database_url, tmp_path):
    _old_schema(database_url, tmp_path)
    add_user(database_url, "alice")
    jobs = {name: insert_job(database_url, 1, status="finished") for name in JOBS}
    for name, job in jobs.items():
        _store_by_text(database_url, job, JOBS[name])
    with make_client(api_settings) as client:
        alice = login(client, "alice")
        builds = {}
        for name, job in jobs.items():
            response = client.post(f"/api/v1/jobs/{job}/graphs", json={"level": "page"},
                                   headers=alice)
            assert response.status_code == 202, response.text
            builds[name] = response.json()["id"]

        assert upgrade(database_url) == [m.name for m in load_migrations()
                                         if m.version >= FIRST_BY_ID]

        for name, job in jobs.items():
            expected = sorted(JOBS[name], key=lambda link: (link[0], link[1]))
            assert _listed(client, alice, job) == expected
        for _ in jobs:
            Worker(database_url, api_settings.home, WorkerConfig(poll_seconds=0.1)).run(once=True)
        for name, build in builds.items():
            meta = client.get(f"/api/v1/graphs/{build}", headers=alice).json()
            assert meta["status"] == "done", meta
            drawing = client.get(f"/api/v1/graphs/{build}/drawing", headers=alice).json()
            label = drawing["labels"]
            edges = drawing["edges"]
            pairs = {(label[edges[i]], label[edges[i + 1]]) for i in range(0, len(edges), 2)}
            assert pairs == {(source, target) for source, target, *_ in JOBS[name]}
    with psycopg.connect(database_url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'links'").fetchone()
        assert kind == ("v",)  # the links, unpacked from outlinks
        rows = conn.execute("SELECT count(*) FROM outlinks").fetchone()[0]
        assert rows == sum(len({source for source, *_ in links}) for links in JOBS.values())
        shared = conn.execute("SELECT count(*) FROM urls WHERE url = %s", (SHARED,)).fetchone()
        assert shared[0] == 2  # a URL lives once per job
