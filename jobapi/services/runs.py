"""A job's crawler processes on scrapyd: abandon them, or stop them and wait.

`abandon` is the one way a job that cannot go on lets go of what it started:
its recorded processes are cancelled and its frontier is cleared (submission
that failed half-way, recovery of a job a stopped API left). `stop_processes`
waits for cancelled processes to exit, killing the ones that do not.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import redis.asyncio as aioredis

from jobapi.errors import ApiError
from jobapi.scrapyd import ScrapydClient
from jobapi.services import frontier

log = logging.getLogger("jobapi.jobs")


async def abandon(scrapyd: ScrapydClient, redis_client: aioredis.Redis, job_id: uuid.UUID,
                  entries: Sequence[dict[str, Any]]) -> None:
    """Cancel a job's recorded processes and clear its frontier; failures are logged."""
    for entry in entries:
        try:
            await scrapyd.cancel(scrapyd.node_of(entry), entry["jobid"])
        except ApiError as exc:
            log.warning("job %s: could not cancel %s: %s", job_id, entry["jobid"], exc.message)
    try:
        await frontier.clear(redis_client, str(job_id))
    except ApiError as exc:
        log.warning("job %s: could not clear the frontier: %s", job_id, exc.message)


CANCEL_GRACE_SECONDS = 20.0
CANCEL_KILL_SECONDS = 10.0


async def _alive(scrapyd: ScrapydClient, entries: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    alive = []
    for node in {id(n): n for n, _ in entries}.values():
        try:
            listing = await scrapyd.list_jobs(node)
        except ApiError:
            continue
        ids = {j.get("id") for state in ("pending", "running") for j in listing.get(state, [])}
        alive += [(n, jobid) for n, jobid in entries if n is node and jobid in ids]
    return alive


async def stop_processes(scrapyd: ScrapydClient, entries: list[tuple[Any, str]],
                          job_id: uuid.UUID) -> None:
    for wait, signal in ((CANCEL_GRACE_SECONDS, "KILL"), (CANCEL_KILL_SECONDS, None)):
        with anyio.move_on_after(wait):
            while entries := await _alive(scrapyd, entries):
                await anyio.sleep(0.5)
        if not entries or signal is None:
            break
        for node, jobid in entries:
            log.warning("job %s: %s did not stop in time; killing it", job_id, jobid)
            try:
                await scrapyd.cancel(node, jobid, signal=signal)
            except ApiError as exc:
                log.warning("job %s: could not kill %s: %s", job_id, jobid, exc.message)
