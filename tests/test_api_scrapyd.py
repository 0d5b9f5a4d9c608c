"""Job API over a real scrapyd: schedule, idempotency, scrapyd down or failing, cancel.

The session's scrapyd runs the project's `site` spider; each job's crawler gets
this test's database and Redis through `crawler_overrides`.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from urllib.parse import urlsplit

import msgspec
import psycopg
import pytest

from jobapi.scrapyd import ScrapydClient, ScrapydError, ScrapydUnavailable
from tests.api_fixtures import assert_error, login, make_client
from tests.test_frontier_queue import BlockingFrontier

pytest_plugins = ["tests.api_fixtures"]


@pytest.fixture
def crawl_settings(api_settings):
    return msgspec.structs.replace(api_settings, allow_private_networks=True)


@pytest.fixture
def overrides(database_url, redis_url):
    return {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url}


def scrapyd_jobs(scrapyd_url: str, job_id: str) -> dict[str, list[str]]:
    """scrapyd's pending/running/finished processes of one job."""

    async def fetch():
        client = ScrapydClient([scrapyd_url])
        try:
            return await client.list_jobs(client.nodes[0])
        finally:
            await client.aclose()

    listing = asyncio.run(fetch())
    return {state: [j["id"] for j in listing.get(state, []) if j["id"].startswith(job_id)]
            for state in ("pending", "running", "finished")}


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def crawl_log(stack_settings, jobid: str) -> str:
    """The tail of a crawler process's scrapyd log (shown when an assertion fails)."""
    logs = list((stack_settings.home / "scrapyd").glob(f"logs/crawlgraph/*/{jobid}.log"))
    return logs[0].read_text()[-3000:] if logs else "(no log)"


def job_row(database_url: str, job_id: str) -> tuple:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT status, error, scrapyd_jobs FROM jobs WHERE id = %s",
                            (job_id,)).fetchone()


def test_idempotency_key_gives_one_job_and_one_schedule(crawl_settings, overrides, users,
                                                        scrapyd_url, mock_server, database_url,
                                                        stack_settings):
    site = mock_server(pages=5)
    body = {"start_urls": [site.start_url], "max_depth": 10, "allowed_domains": [
        f"127.0.0.1:{site.port}"], "tags": ["idem"]}
    with make_client(crawl_settings, crawler_overrides=overrides) as client:
        headers = {**login(client, "alice"), "Idempotency-Key": "submit-1"}
        first = client.post("/api/v1/jobs", json=body, headers=headers)
        assert first.status_code == 201, first.text
        again = client.post("/api/v1/jobs", json=body, headers=headers)
        assert again.status_code == 200, again.text
        job_id = first.json()["id"]
        assert again.json()["id"] == job_id
        assert first.json()["scrapyd_jobs"] == [{"node": 0, "jobid": f"{job_id}-0"}]
        other = client.post("/api/v1/jobs", json={**body, "max_depth": 9}, headers=headers)
        assert_error(other, 409, "conflict")
        # The same key of another user is another job.
        bob = {**login(client, "bob"), "Idempotency-Key": "submit-1"}
        assert client.post("/api/v1/jobs", json=body, headers=bob).json()["id"] != job_id
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM jobs WHERE owner_id = %s",
                                (users["alice"],)).fetchone()[0] == 1
        listed = scrapyd_jobs(scrapyd_url, job_id)
        assert sum(len(ids) for ids in listed.values()) == 1, listed
        # The crawl runs and finishes on its own (5 pages).
        wait_for(lambda: client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["status"]
                 in ("finished", "failed"), 120, "the job to finish")
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        assert job["status"] == "finished", (job, crawl_log(stack_settings, f"{job_id}-0"))
        pages = client.get(f"/api/v1/jobs/{job_id}/pages", headers=headers).json()["items"]
        assert 1 <= len(pages) <= 5, crawl_log(stack_settings, f"{job_id}-0")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_scrapyd_down_is_503_and_the_job_failed_with_the_reason(crawl_settings, users,
                                                                  database_url, redis_url):
    settings = msgspec.structs.replace(
        crawl_settings, scrapyd_urls=(f"http://u:secret-pw@127.0.0.1:{_closed_port()}",))
    with make_client(settings) as client:
        headers = login(client, "alice")
        response = client.post("/api/v1/jobs", headers=headers,
                               json={"start_urls": ["http://127.0.0.1:9/"]})
        error = assert_error(response, 503, "scrapyd_unavailable")
        assert "secret-pw" not in response.text
        assert "cannot be reached" in error["message"]
        jobs = client.get("/api/v1/jobs", headers=headers).json()["items"]
    assert len(jobs) == 1
    assert jobs[0]["status"] == "failed"
    assert "cannot be reached" in jobs[0]["error"]
    stats = BlockingFrontier(redis_url, jobs[0]["id"]).stats()
    assert stats["queued"] == 0 and stats["seen"] == 0


def test_scrapyd_refusing_is_502_and_the_job_failed(crawl_settings, users, scrapyd_url):
    parts = urlsplit(scrapyd_url)
    wrong = parts._replace(netloc=f"{parts.username}:wrong@{parts.hostname}:{parts.port}")
    settings = msgspec.structs.replace(crawl_settings, scrapyd_urls=(wrong.geturl(),))
    with make_client(settings) as client:
        headers = login(client, "alice")
        response = client.post("/api/v1/jobs", headers=headers,
                               json={"start_urls": ["http://127.0.0.1:9/"]})
        assert_error(response, 502, "scrapyd_error")
        job = client.get("/api/v1/jobs", headers=headers).json()["items"][0]
    assert job["status"] == "failed" and "could not start" in job["error"]


def test_client_reads_scrapyds_error_body_on_http_200(scrapyd_url):
    async def run():
        client = ScrapydClient([scrapyd_url])
        try:
            with pytest.raises(ScrapydError) as caught:
                await client.schedule(client.nodes[0], "no_such_spider", "x-0", {}, {})
            assert "no_such_spider" in caught.value.message or "spider" in caught.value.message
            status = await client.daemon_status(client.nodes[0])
            assert status["status"] == "ok"
        finally:
            await client.aclose()
        down = ScrapydClient([f"http://127.0.0.1:{_closed_port()}"], retries=1, backoff=0.01)
        try:
            with pytest.raises(ScrapydUnavailable):
                await down.daemon_status(down.nodes[0])
        finally:
            await down.aclose()

    asyncio.run(run())


def test_cancel_stops_the_scrapyd_process_and_clears_the_frontier(
        crawl_settings, overrides, users, scrapyd_url, mock_server, database_url, redis_url):
    site = mock_server(pages=400)
    body = {"start_urls": [site.start_url], "workers": 2,
            "allowed_domains": [f"127.0.0.1:{site.port}"],
            "settings": {"DOWNLOAD_DELAY": 1.0, "CONCURRENT_REQUESTS_PER_DOMAIN": 1}}
    with make_client(crawl_settings, crawler_overrides=overrides) as client:
        headers = login(client, "alice")
        created = client.post("/api/v1/jobs", json=body, headers=headers)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert [j["jobid"] for j in created.json()["scrapyd_jobs"]] == [f"{job_id}-0",
                                                                        f"{job_id}-1"]
        wait_for(lambda: len(scrapyd_jobs(scrapyd_url, job_id)["running"]) == 2, 90,
                 "both crawler processes to run")
        wait_for(lambda: client.get(f"/api/v1/jobs/{job_id}/pages", headers=headers
                                    ).json()["items"], 90, "the first stored page")
        cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        wait_for(lambda: len(scrapyd_jobs(scrapyd_url, job_id)["finished"]) == 2, 90,
                 "the crawler processes to stop")
        stats = BlockingFrontier(redis_url, job_id).stats()
        assert stats["queued"] == 0 and stats["leased"] == 0
        assert job_row(database_url, job_id)[0] == "cancelled"
        again = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_cancel_of_a_finished_job_is_409(crawl_settings, users, database_url):
    from tests.test_api_jobs import insert_job

    job_id = insert_job(database_url, users["alice"], status="finished")
    with make_client(crawl_settings) as client:
        response = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=login(client, "alice"))
        assert_error(response, 409)
        assert str(uuid.UUID(str(job_id))) in response.json()["error"]["message"]


def test_workers_go_to_the_nodes_that_answer(crawl_settings, overrides, users, scrapyd_url,
                                             mock_server, stack_settings):
    site = mock_server(pages=3)
    dead = f"http://u:pw@127.0.0.1:{_closed_port()}"
    settings = msgspec.structs.replace(crawl_settings, scrapyd_urls=(dead, scrapyd_url))
    with make_client(settings, crawler_overrides=overrides) as client:
        headers = login(client, "alice")
        created = client.post("/api/v1/jobs", headers=headers, json={
            "start_urls": [site.start_url], "workers": 2,
            "allowed_domains": [f"127.0.0.1:{site.port}"]})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert [(j["node"], j["jobid"]) for j in created.json()["scrapyd_jobs"]] == [
            (1, f"{job_id}-0"), (1, f"{job_id}-1")]
        wait_for(lambda: client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["status"]
                 in ("finished", "failed"), 120, "the job to finish")
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        assert job["status"] == "finished", (job, crawl_log(stack_settings, f"{job_id}-0"))
