"""Retention: `DELETE /api/v1/jobs/{id}` and `/graphs/{id}`, the purge, a schedule's keep_last.

Against the session's real PostgreSQL: a deletion hides the job (and the builds
made from it) from every read at once; the purge then removes exactly its rows
and files, in batches, and the row last, once every node has deleted its WARC
files. What may not be deleted says why and what to do.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import psycopg

from graphs import store
from jobapi.services.loops import open_pool
from jobapi.services.purge import apply_keep_last, purge_step
from tests.api_fixtures import assert_error, login
from tests.retentiondata import JOB_TABLES, add_build, fill_job, rows_of
from tests.test_api_jobs import insert_job

pytest_plugins = ["tests.api_fixtures"]
MAX_STEPS = 1000


def purge_all(settings, *, node: str | None = None, batch: int = 40) -> int:
    """Run purge steps until one finds nothing to do; how many did something."""
    async def run() -> int:
        pool = await open_pool(settings, name="test-purge", max_size=2)
        try:
            for steps in range(MAX_STEPS):
                if not await purge_step(pool, settings.home, node=node, batch=batch):
                    return steps
            raise AssertionError(f"the purge was not done after {MAX_STEPS} steps")
        finally:
            await pool.close()
    return asyncio.run(run())


def keep_last(settings) -> int:
    async def run() -> int:
        pool = await open_pool(settings, name="test-keep-last", max_size=2)
        try:
            return await apply_keep_last(pool)
        finally:
            await pool.close()
    return asyncio.run(run())


def test_a_deleted_job_is_gone_at_once_and_purged_to_its_last_row_and_file(
        client, users, database_url, api_settings):
    alice = login(client, "alice")
    job = insert_job(database_url, users["alice"], status="finished")
    kept = insert_job(database_url, users["alice"], status="finished")
    warc_dir = api_settings.home / "warc"
    warc_dir.mkdir()
    here, elsewhere = f"{job}-w1-00001.warc.gz", f"{job}-w2-00001.warc.gz"
    (warc_dir / here).write_bytes(b"archive")
    graph_file = api_settings.home / "graphs" / "built.gt.gz"
    graph_file.parent.mkdir()
    graph_file.write_bytes(b"graph")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET idempotency_key = 'k1' WHERE id = %s", (job,))
        for target in (job, kept):
            fill_job(conn, target)
        for name, node in ((here, socket.gethostname()), (elsewhere, "another-node")):
            conn.execute("INSERT INTO warc_files (job_id, name, node, worker, bytes, records, "
                         "closed_at) VALUES (%s, %s, %s, 'w1', 7, 1, now())", (job, name, node))
        build = add_build(conn, users["alice"], [job], path="graphs/built.gt.gz")
        other_build = add_build(conn, users["alice"], [kept])
        before_kept = rows_of(conn, kept)

    deleted = client.delete(f"/api/v1/jobs/{job}", headers=alice)
    assert deleted.status_code == 202, deleted.text
    assert deleted.json()["id"] == str(job) and deleted.json()["graph_builds"] == [str(build)]
    # Gone from every read at once, before any purge.
    assert_error(client.get(f"/api/v1/jobs/{job}", headers=alice), 404, "not_found")
    for path in ("summary", "pages", "links", "items", "warcs"):
        assert_error(client.get(f"/api/v1/jobs/{job}/{path}", headers=alice), 404)
    listed = client.get("/api/v1/jobs", headers=alice).json()["items"]
    assert [j["id"] for j in listed] == [str(kept)]
    assert client.get(f"/api/v1/graphs/{build}", headers=alice).status_code == 404
    assert client.get(f"/api/v1/graphs/{other_build}", headers=alice).status_code == 200
    assert_error(client.delete(f"/api/v1/jobs/{job}", headers=alice), 404, "not_found")

    steps = purge_all(api_settings, batch=40)
    # 50 pages, 200 links and 30 nodes in batches of 40: many short transactions.
    assert steps >= 200 // 40 + 50 // 40 + 30 // 40
    with psycopg.connect(database_url, autocommit=True) as conn:
        left = rows_of(conn, job)
        assert left == {**dict.fromkeys(JOB_TABLES, 0), "warc_files": 1}, left
        assert conn.execute("SELECT purged_at IS NOT NULL, idempotency_key FROM jobs "
                            "WHERE id = %s", (job,)).fetchone() == (True, None)
        assert conn.execute("SELECT count(*) FROM graph_builds WHERE id = %s",
                            (build,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM graph_nodes WHERE build_id = %s",
                            (build,)).fetchone()[0] == 0
        assert rows_of(conn, kept) == before_kept
    assert not (warc_dir / here).exists() and not graph_file.exists()

    # The row waits for the node that holds the other file; its purger ends it.
    purge_all(api_settings, node="another-node")
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE id = %s", (job,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM graph_nodes WHERE build_id = %s",
                            (other_build,)).fetchone()[0] == 30
        assert rows_of(conn, kept) == before_kept


def test_what_may_not_be_deleted_says_why_and_what_to_do(client, users, database_url):
    alice, bob, root = (login(client, u) for u in ("alice", "bob", "root"))
    running = insert_job(database_url, users["alice"], status="running")
    error = assert_error(client.delete(f"/api/v1/jobs/{running}", headers=alice), 409,
                         "conflict")
    assert "has not ended" in error["message"] and f"/api/v1/jobs/{running}/cancel" in \
        error["hint"]

    finished = insert_job(database_url, users["alice"], status="finished")
    assert_error(client.delete(f"/api/v1/jobs/{finished}", headers=bob), 404, "not_found")

    recrawl = insert_job(database_url, users["alice"], status="running")
    graphed = insert_job(database_url, users["alice"], status="finished")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET recrawl_of = %s WHERE id = %s", (finished, recrawl))
        building = add_build(conn, users["alice"], [graphed], status="running", nodes=0)
    error = assert_error(client.delete(f"/api/v1/jobs/{finished}", headers=alice), 409)
    assert str(recrawl) in error["message"]
    error = assert_error(client.delete(f"/api/v1/jobs/{graphed}", headers=alice), 409)
    assert str(building) in error["message"]
    error = assert_error(client.delete(f"/api/v1/graphs/{building}", headers=alice), 409)
    assert "being built" in error["message"]
    assert client.get(f"/api/v1/jobs/{finished}", headers=alice).status_code == 200

    # Once the recrawl has ended, the job goes; an admin may delete anyone's.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (recrawl,))
    assert client.delete(f"/api/v1/jobs/{finished}", headers=root).status_code == 202


def test_a_deleted_queued_build_is_never_claimed_by_a_worker(client, users, database_url):
    alice, bob = login(client, "alice"), login(client, "bob")
    job = insert_job(database_url, users["alice"], status="finished")
    with psycopg.connect(database_url, autocommit=True) as conn:
        queued = add_build(conn, users["alice"], [job], status="queued", nodes=0)
    assert_error(client.delete(f"/api/v1/graphs/{queued}", headers=bob), 404)
    answer = client.delete(f"/api/v1/graphs/{queued}", headers=alice)
    assert answer.status_code == 202, answer.text
    assert client.get(f"/api/v1/graphs/{queued}", headers=alice).status_code == 404
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert store.claim(conn, "w1", stale_after=60) is None
    assert client.get(f"/api/v1/jobs/{job}", headers=alice).status_code == 200


def test_a_schedule_keeps_only_its_newest_crawls(client, users, database_url, api_settings):
    alice = login(client, "alice")
    body = {"name": "daily", "interval_seconds": 86400, "keep_last": 2,
            "job": {"start_urls": ["https://a.example/"]}}
    created = client.post("/api/v1/schedules", json=body, headers=alice)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["keep_last"] == 2
    start = datetime.now(UTC) - timedelta(days=10)
    jobs = []
    for n, status in enumerate(("finished", "running", "finished", "failed", "finished")):
        job = insert_job(database_url, users["alice"], status=status,
                         created_at=start + timedelta(days=n))
        jobs.append(job)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET schedule_id = %s WHERE id = ANY(%s)",
                     (schedule["id"], jobs))
        fill_job(conn, jobs[0], pages=5)

    assert keep_last(api_settings) == 2  # the third and the fifth newest
    listed = {j["id"] for j in client.get("/api/v1/jobs", headers=alice).json()["items"]}
    # The fourth newest is past keep_last too, but has not ended: it stays until it has.
    assert listed == {str(jobs[1]), str(jobs[3]), str(jobs[4])}
    assert keep_last(api_settings) == 0
    purge_all(api_settings)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE id = ANY(%s)",
                            ([jobs[0], jobs[2]],)).fetchone()[0] == 0

    changed = client.patch(f"/api/v1/schedules/{schedule['id']}", json={"keep_last": 0},
                           headers=alice)
    assert changed.status_code == 200 and changed.json()["keep_last"] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (jobs[1],))
    assert keep_last(api_settings) == 0



def test_the_purge_deletes_no_file_outside_the_data_directory(client, users, database_url,
                                                               api_settings):
    outside = api_settings.home.parent / f"{api_settings.home.name}-outside.txt"
    outside.write_text("not the product's")
    job = insert_job(database_url, users["alice"], status="finished")
    with psycopg.connect(database_url, autocommit=True) as conn:
        build = add_build(conn, users["alice"], [job], path=f"../{outside.name}")
    answer = client.delete(f"/api/v1/graphs/{build}", headers=login(client, "alice"))
    assert answer.status_code == 202, answer.text
    purge_all(api_settings)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM graph_builds WHERE id = %s",
                            (build,)).fetchone()[0] == 0
    assert outside.read_text() == "not the product's"
