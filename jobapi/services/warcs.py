"""The WARC files of a job: listed from PostgreSQL, served from this node's disk.

A worker writes its files on its own node (`crawler.middlewares.warc`) and
records each in ``warc_files`` with the node's host name, so the list holds
the files of every node. A file is served only by an API process on the node
that holds it, from the data directory's ``warc/``; elsewhere the answer says
which node holds it. A file still being written is not served.
"""

from __future__ import annotations

import socket
import uuid
from datetime import datetime
from pathlib import Path

import msgspec
from psycopg_pool import AsyncConnectionPool

from crawler.warcfiles import NAME
from jobapi.auth import CurrentUser
from jobapi.errors import Conflict, NotFound, Unprocessable
from jobapi.services.jobs import get_job_row
from jobapi.sql import QUERIES


class WarcFile(msgspec.Struct, kw_only=True):
    name: str
    node: str
    worker: str
    bytes: int
    records: int
    opened_at: datetime
    closed: bool
    closed_at: datetime | None


class WarcFileList(msgspec.Struct, kw_only=True):
    job_id: uuid.UUID
    files: list[WarcFile]


def warc_dir(home: Path) -> Path:
    return home / "warc"


async def list_warcs(pool: AsyncConnectionPool, job_id: uuid.UUID,
                     user: CurrentUser) -> WarcFileList:
    await get_job_row(pool, job_id, user)
    async with pool.connection() as conn:
        rows = await (await conn.execute(QUERIES["warc_list"], (job_id,))).fetchall()
    files = [WarcFile(name=r[0], node=r[1], worker=r[2], bytes=r[3], records=r[4],
                      opened_at=r[5], closed=r[6] is not None, closed_at=r[6]) for r in rows]
    return WarcFileList(job_id=job_id, files=files)


async def warc_path(pool: AsyncConnectionPool, home: Path, job_id: uuid.UUID, name: str,
                    user: CurrentUser) -> Path:
    """The path of a closed WARC file of the job on this node; the errors say why not."""
    await get_job_row(pool, job_id, user)
    if not NAME.match(name) or not name.startswith(f"{job_id}-"):
        raise Unprocessable(f"Not a WARC file name of job {job_id}: {name[:100]!r}.",
                            hint="Take a name from GET /api/v1/jobs/{id}/warcs.", field="name")
    async with pool.connection() as conn:
        row = await (await conn.execute(QUERIES["warc_get"], (job_id, name))).fetchone()
    if row is None:
        raise NotFound(f"Job {job_id} has no WARC file {name}.")
    node, closed_at = row
    if closed_at is None:
        raise Conflict(f"WARC file {name} is still being written.",
                       hint="Download it once the list shows it closed.")
    if node != socket.gethostname():
        raise Conflict(f"WARC file {name} is on node {node}, not on this API's node.",
                       hint=f"Ask the job API running on {node}, or copy the file from its "
                            "data directory's warc/.")
    path = warc_dir(home) / name
    if not path.is_file():
        raise NotFound(f"WARC file {name} is listed but no longer on disk.")
    return path
