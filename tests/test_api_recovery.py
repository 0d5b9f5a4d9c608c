"""Recovery of a job its crawlers ended before the API recorded their processes.

A killed API can leave a short crawl that it had scheduled but not recorded:
its processes run, end the job, and nobody records them, so its crawl log
cannot be found (seen in scenario 6, tests/faults/test_api_kill.py). The
listing is scrapyd's answer as data; the job rows are real.
"""

from __future__ import annotations

import asyncio

import psycopg
from psycopg_pool import AsyncConnectionPool

from jobapi.scrapyd import Node
from jobapi.services.recovery import recover
from tests.test_pipeline_store import make_job

NODE = "http://127.0.0.1:6800"


class ListedScrapyd:
    """One scrapyd node whose finished processes are `finished`."""

    def __init__(self, finished: list[str]) -> None:
        self.nodes = [Node(0, NODE)]
        self.finished = finished

    async def list_jobs(self, node: Node) -> dict[str, list[dict[str, str]]]:
        return {"pending": [], "running": [], "finished": [{"id": j} for j in self.finished]}


def _recover(database_url: str, scrapyd: ListedScrapyd) -> dict[str, int]:
    async def run() -> dict[str, int]:
        async with AsyncConnectionPool(database_url, open=False) as pool:
            return await recover(pool, None, scrapyd, grace_seconds=10)
    return asyncio.run(run())


def test_a_job_ended_before_its_processes_were_recorded_gets_them_recorded(
        database_url: str) -> None:
    ended, unknown = make_job(database_url), make_job(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE jobs SET status = 'finished', close_reason = 'finished', "
                     "workers = 2, finished_at = now(), created_at = now() - interval '1 minute'"
                     " WHERE id = ANY(%s::uuid[])", ([ended, unknown],))
    scrapyd = ListedScrapyd([f"{ended}-0", f"{ended}-1"])
    assert _recover(database_url, scrapyd)["recorded"] == 1
    assert _recover(database_url, scrapyd)["recorded"] == 0  # once
    with psycopg.connect(database_url) as conn:
        rows = {job: (status, entries) for job, status, entries in conn.execute(
            "SELECT id::text, status, scrapyd_jobs FROM jobs")}
    assert rows[ended] == ("finished", [{"node": 0, "node_url": NODE, "jobid": f"{ended}-{n}"}
                                        for n in range(2)])
    # scrapyd knows none of its processes: the ended job stays as it is, not failed.
    assert rows[unknown] == ("finished", [])
