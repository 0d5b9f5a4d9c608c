"""Recovery of jobs left half-done by a stopped API or by crawler processes that vanished.

`create_job` stores the job row, then seeds the frontier and schedules the
crawler processes, then records their scrapyd job ids. An API process killed
in between leaves a job that nobody will ever start or end. `recover()` finds
such jobs and puts them in a true state:

- **Never recorded as scheduled** (`pending` or `running`, no scrapyd job
  recorded, created more than `grace_seconds` ago): its processes are looked
  up on every scrapyd node by their ids `<job id>-<n>`. If all `workers` of
  them exist (pending, running or finished), they are recorded and the job
  goes on. Otherwise the ones found are cancelled, the frontier is cleared and
  the job is `failed` with "the API stopped while scheduling this job; submit
  it again". A job whose crawlers ended it before its processes were recorded
  (a short crawl) gets the processes scrapyd still knows of recorded, so that
  its crawl log can be found; it is looked at for an hour after its end.
- **Recorded, but no process left** (`pending` or `running`, none of its
  recorded processes pending or running on its node, no stats written for
  `grace_seconds`): its crawler processes ended without recording the end of
  the job (killed with scrapyd or the machine). The job is `failed` with that
  reason; its frontier stays, and the requests its processes held leased go
  back to the queue, so nothing it had queued is lost.

`run_recovery()` runs `recover()` when the API starts and then every
`interval_seconds`; `create_app(..., recovery_grace_seconds=None)` turns it off.
Several API processes may run it at once: every change is a conditional
UPDATE on the job's current state, so the first one wins and the others change
nothing. The grace period must exceed the time one submission takes to
schedule its processes (seconds), or a submission still being scheduled by a
live API would be failed under its feet.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Final

import anyio
import msgspec
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from jobapi.errors import ApiError
from jobapi.scrapyd import Node, ScrapydClient
from jobapi.services import frontier, runs
from jobapi.sql import QUERIES

log = logging.getLogger("jobapi.recovery")

GRACE_SECONDS: Final = 120.0
INTERVAL_SECONDS: Final = 60.0
#: How long after its end a job with no processes recorded is still looked at.
ENDED_LOOKBACK_SECONDS: Final = 3600.0
UNSCHEDULED_REASON: Final = "the API stopped while scheduling this job; submit it again"
VANISHED_REASON: Final = ("its crawler processes ended without recording the end of the job "
                          "(scrapyd or its machine stopped them); resume it by submitting it "
                          "again")
BATCH: Final = 500

FIND_UNSCHEDULED: Final = QUERIES["find_unscheduled"]
FIND_ACTIVE: Final = QUERIES["find_active"]
RECORD_SCHEDULED: Final = QUERIES["record_scheduled"]
FAIL_UNSCHEDULED: Final = QUERIES["fail_unscheduled"]
FAIL_VANISHED: Final = QUERIES["fail_vanished"]


class _Listings:
    """scrapyd's jobs per node, read once per recovery pass: jobid -> (node, state)."""

    def __init__(self, scrapyd: ScrapydClient) -> None:
        self.scrapyd = scrapyd
        self._by_node: dict[int, dict[str, str] | None] = {}

    async def node_jobs(self, node: Node) -> dict[str, str] | None:
        """The node's jobs, or None when the node cannot be asked."""
        if node.index not in self._by_node:
            try:
                listing = await self.scrapyd.list_jobs(node)
            except ApiError as exc:
                log.warning("recovery: cannot list the jobs of %s: %s", node.name, exc.message)
                self._by_node[node.index] = None
            else:
                self._by_node[node.index] = {
                    str(job.get("id")): state
                    for state in ("pending", "running", "finished")
                    for job in listing.get(state, [])
                }
        return self._by_node[node.index]

    async def find(self, jobid: str) -> tuple[Node, str] | None | bool:
        """(node, state) of `jobid`; None if no node has it; False if a node could not say."""
        unknown = False
        for node in self.scrapyd.nodes:
            jobs = await self.node_jobs(node)
            if jobs is None:
                unknown = True
            elif jobid in jobs:
                return node, jobs[jobid]
        return False if unknown else None


async def recover(pool: AsyncConnectionPool, redis_client: aioredis.Redis,
                  scrapyd: ScrapydClient, grace_seconds: float = GRACE_SECONDS) -> dict[str, int]:
    """One pass over half-done jobs; returns how many were recorded, failed, left alone."""
    counts = {"recorded": 0, "failed_unscheduled": 0, "failed_vanished": 0}
    listings = _Listings(scrapyd)
    async with pool.connection() as conn:
        unscheduled = await (await conn.execute(
            FIND_UNSCHEDULED, (grace_seconds, ENDED_LOOKBACK_SECONDS, BATCH))).fetchall()
        active = await (await conn.execute(FIND_ACTIVE, (grace_seconds, BATCH))).fetchall()
    for job_id, workers, live in unscheduled:
        outcome = await _recover_unscheduled(pool, redis_client, scrapyd, listings, job_id,
                                             workers, live)
        if outcome:
            counts[outcome] += 1
    for job_id, entries in active:
        if await _vanished(listings, scrapyd, entries or []):
            async with pool.connection() as conn:
                cur = await conn.execute(FAIL_VANISHED, (VANISHED_REASON, job_id, grace_seconds))
            if cur.rowcount:
                log.warning("job %s failed: %s", job_id, VANISHED_REASON)
                counts["failed_vanished"] += 1
                await _return_leases(redis_client, str(job_id))
    return counts


async def _recover_unscheduled(
    pool: AsyncConnectionPool, redis_client: aioredis.Redis, scrapyd: ScrapydClient,
    listings: _Listings, job_id: uuid.UUID, workers: int, live: bool,
) -> str | None:
    found: list[dict[str, Any]] = []
    for n in range(workers):
        jobid = f"{job_id}-{n}"
        where = await listings.find(jobid)
        if where is False:
            return None  # a node could not be asked: decide on a later pass
        if where is not None:
            node, _state = where
            found.append({"node": node.index, "node_url": node.base, "jobid": jobid})
    if len(found) == workers or (found and not live):
        async with pool.connection() as conn:
            cur = await conn.execute(RECORD_SCHEDULED,
                                     (msgspec.json.encode(found).decode(), job_id))
        if cur.rowcount:
            log.info("job %s: its %d crawler processes were scheduled; recorded", job_id,
                     len(found))
            return "recorded"
        return None
    if not live:
        return None  # ended by its crawlers, and scrapyd knows none of its processes
    async with pool.connection() as conn:
        cur = await conn.execute(FAIL_UNSCHEDULED, (UNSCHEDULED_REASON,
                                                    msgspec.json.encode(found).decode(), job_id))
    if not cur.rowcount:
        return None  # recorded or ended meanwhile
    log.warning("job %s failed: %s", job_id, UNSCHEDULED_REASON)
    await runs.abandon(scrapyd, redis_client, job_id, found)
    return "failed_unscheduled"


async def _vanished(listings: _Listings, scrapyd: ScrapydClient,
                    entries: list[dict[str, Any]]) -> bool:
    """True if no recorded process of the job is pending or running (and every node answered)."""
    for entry in entries:
        node = scrapyd.node_of(entry)
        jobs = await listings.node_jobs(node)
        if jobs is None:
            return False
        if jobs.get(str(entry.get("jobid", ""))) in ("pending", "running"):
            return False
    return True


async def _return_leases(redis_client: aioredis.Redis, job_id: str) -> None:
    """Put every request still leased by the job's dead processes back in its queue."""
    try:
        returned = await frontier.return_leases(redis_client, job_id)
    except ApiError as exc:
        # Not lost: they expire and the next worker of the job requeues them.
        log.warning("job %s: could not return its leases: %s", job_id, exc.message)
        return
    if returned:
        log.info("job %s: %d leased requests back in the queue", job_id, returned)


async def run_recovery(pool: AsyncConnectionPool, redis_client: aioredis.Redis,
                       scrapyd: ScrapydClient, grace_seconds: float = GRACE_SECONDS,
                       interval_seconds: float = INTERVAL_SECONDS) -> None:
    """`recover()` now and every `interval_seconds`, until cancelled; errors are logged."""
    while True:
        try:
            counts = await recover(pool, redis_client, scrapyd, grace_seconds)
            if any(counts.values()):
                log.info("recovery: %s", counts)
        except Exception as exc:  # noqa: BLE001 - a failed pass must not stop the next one
            log.warning("recovery pass failed: %s: %s", type(exc).__name__, exc)
        await anyio.sleep(interval_seconds)
