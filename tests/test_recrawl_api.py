"""The `recrawl_of` job option: the caller must be able to read the job, and a schedule's
fire recrawls the series' previous finished job."""

from __future__ import annotations

import uuid

import anyio
import msgspec
import psycopg

from jobapi.schemas import JobCreate
from jobapi.services.schedules_fire import recrawling
from tests.api_fixtures import assert_error, login, make_client
from tests.conftest import free_port
from tests.test_api_jobs import insert_job
from tests.test_api_schedules import JOB, _schedule

pytest_plugins = ["tests.api_fixtures"]


def _recrawl_of(database_url: str, job_id: str) -> tuple:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT recrawl_of, params->>'recrawl_of' FROM jobs WHERE id = %s",
                            (job_id,)).fetchone()


def test_recrawl_of_must_name_a_job_the_caller_may_read(api_settings, users, database_url):
    alices = insert_job(database_url, users["alice"], status="finished")
    bobs = insert_job(database_url, users["bob"], status="finished")
    # scrapyd is down: a job that passes the checks is stored, then fails to start (503).
    down = msgspec.structs.replace(api_settings,
                                   scrapyd_urls=(f"http://127.0.0.1:{free_port()}",))
    with make_client(down) as client:
        alice = login(client, "alice")
        for other in (bobs, uuid.uuid4()):
            error = assert_error(client.post("/api/v1/jobs", json={**JOB, "recrawl_of": str(
                other)}, headers=alice), 422, field="recrawl_of")
            assert str(other) in error["message"]
        assert_error(client.post("/api/v1/jobs", json={**JOB, "recrawl_of": "last-week"},
                                 headers=alice), 422, field="recrawl_of")
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 2
        own = client.post("/api/v1/jobs", json={**JOB, "recrawl_of": str(alices)},
                          headers=alice)
        assert own.status_code == 503, own.text
        with psycopg.connect(database_url) as conn:
            (stored,) = conn.execute("SELECT id FROM jobs WHERE id NOT IN (%s, %s)",
                                     (alices, bobs)).fetchone()
        assert _recrawl_of(database_url, stored) == (alices, str(alices))
        # An admin may recrawl anybody's job.
        root = login(client, "root")
        assert client.post("/api/v1/jobs", json={**JOB, "recrawl_of": str(bobs)},
                           headers=root).status_code == 503


def test_a_fire_recrawls_the_series_previous_finished_job(client, users, database_url):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron="* * * * *", overlap="queue")
    body = msgspec.convert(JOB, JobCreate)
    assert _recrawling(database_url, made["id"], body).recrawl_of is None  # a first fire
    finished = insert_job(database_url, users["alice"], status="finished")
    older = insert_job(database_url, users["alice"], status="finished")
    failed = insert_job(database_url, users["alice"], status="failed")
    with psycopg.connect(database_url) as conn:
        for job, minutes in ((older, 4), (finished, 3), (failed, 2)):
            conn.execute("UPDATE jobs SET schedule_id = %s, schedule_slot = now() "
                         "- make_interval(mins => %s) WHERE id = %s", (made["id"], minutes, job))
    assert _recrawling(database_url, made["id"], body).recrawl_of == str(finished)
    # A schedule whose job body names the job to recrawl keeps it.
    named = msgspec.structs.replace(body, recrawl_of=str(older))
    assert _recrawling(database_url, made["id"], named).recrawl_of == str(older)


def _recrawling(database_url: str, schedule_id: str, body: JobCreate) -> JobCreate:
    async def run() -> JobCreate:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await recrawling(conn, uuid.UUID(schedule_id), body)
    return anyio.run(run)


def _add_pages(database_url: str, job: uuid.UUID, marks: dict[str, str | None]) -> None:
    with psycopg.connect(database_url) as conn:
        for url, change in marks.items():
            conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, change) "
                         "VALUES (%s, %s, %s, 200, now(), %s)", (job, url, url, change))


def test_the_summary_of_a_recrawl_counts_its_changes(client, users, database_url):
    site = "https://a.example/"
    first = insert_job(database_url, users["alice"], status="finished")
    _add_pages(database_url, first, dict.fromkeys(site + p for p in "abcd"))
    second = insert_job(database_url, users["alice"], status="finished")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET recrawl_of = %s, params = params || %s::jsonb "
                     "WHERE id = %s", (first, f'{{"recrawl_of": "{first}"}}', second))
    _add_pages(database_url, second, {site + "a": "unchanged", site + "b": "changed",
                                      site + "e": "new"})
    alice = login(client, "alice")
    summary = client.get(f"/api/v1/jobs/{second}/summary", headers=alice).json()
    assert summary["changes"] == {"new": 1, "changed": 1, "unchanged": 1, "gone": 2}
    assert summary["pages"] == 3  # the gone pages are no pages of the recrawl
    assert client.get(f"/api/v1/jobs/{first}/summary", headers=alice).json()["changes"] is None
    listed = client.get(f"/api/v1/jobs/{second}/pages", headers=alice).json()["items"]
    assert {p["url"]: p["change"] for p in listed} == {
        site + "a": "unchanged", site + "b": "changed", site + "e": "new"}
