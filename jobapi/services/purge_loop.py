"""The purger process: `crawlgraph purge` removes what deleted jobs and builds leave.

A process of its own (the local stack runs one, `stack/commands.py`), like the
webhook sender: a long purge never slows the API, and it can be stopped or
restarted at any time (`jobapi.services.purge`: each step commits). It needs
only PostgreSQL and the data directory of its node; run one on every node
that holds WARC files. It works step after step while there is work, then
applies the schedules' `keep_last` and looks again every `poll_seconds`.
SIGTERM or SIGINT ends it after the step under way.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import PoolTimeout

from core.settings import Settings
from jobapi.services.loops import open_pool, pause, stopped_by_signals
from jobapi.services.purge import BATCH, apply_keep_last, purge_step

log = logging.getLogger("jobapi.purge")

POLL_SECONDS = 2.0


async def run_purger(settings: Settings, *, poll_seconds: float = POLL_SECONDS,
                     batch: int = BATCH, stop: asyncio.Event | None = None) -> None:
    """Purge until `stop` is set (or a signal)."""
    stop = stop or asyncio.Event()
    with stopped_by_signals(stop):
        pool = await open_pool(settings, name="purge", max_size=2)
        log.info("purger started (batches of %d, every %gs when idle)", batch, poll_seconds)
        try:
            while not stop.is_set():
                try:
                    if await purge_step(pool, settings.home, batch=batch):
                        continue
                    if await apply_keep_last(pool):
                        continue
                except (psycopg.OperationalError, PoolTimeout) as exc:
                    log.warning("purge: PostgreSQL is unavailable (%s); retrying",
                                type(exc).__name__)
                await pause(stop, poll_seconds)
        finally:
            await pool.close()
            log.info("purger stopped")
