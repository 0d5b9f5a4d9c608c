"""The listings of the API: jobs, and a job's pages, links and items, by keyset pages.

Every listing is one named query (`jobapi/sql/jobs.sql`) whose optional
filters are written statically, and `keyset_page` turns its rows into a page
and an opaque cursor (the sort key of the last row), the same for all.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, LiteralString

import msgspec
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import BadRequest
from jobapi.schemas import Item, Job, Link, Page
from jobapi.services.jobs import job_from_row
from jobapi.sql import QUERIES

_LIST_JOBS = QUERIES["list_jobs"]
_LIST_PAGES = QUERIES["list_pages"]
_LIST_LINKS = QUERIES["list_links"]
_LIST_ITEMS = QUERIES["list_items"]


def encode_cursor(*values: Any) -> str:
    raw = msgspec.json.encode([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw)
        if not isinstance(values, list) or len(values) != arity or not all(
            isinstance(v, str | int) for v in values
        ):
            raise ValueError
        return values
    except (ValueError, msgspec.DecodeError):
        raise BadRequest("The cursor is not one this API made.", field="cursor",
                         hint="Pass the next_cursor of the previous page unchanged.") from None


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def created_id_cursor(cursor: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    """The (created_at, id) a newest-first listing's cursor carries; (None, None) for none."""
    if cursor is None:
        return None, None
    created, ident = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(str(created)), uuid.UUID(str(ident))
    except ValueError:
        raise BadRequest("The cursor is not one this API made.", field="cursor") from None


async def keyset_page(
    pool: AsyncConnectionPool, query: LiteralString, params: dict[str, Any], limit: int,
    key: Callable[[tuple], tuple], *, binary: bool = False,
) -> tuple[list[tuple], str | None]:
    """Up to `limit` rows of `query` and the cursor of the next page (None on the last)."""
    async with pool.connection() as conn:
        cur = await conn.execute(query, {**params, "limit": limit + 1}, binary=binary)
        rows = await cur.fetchall()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))


async def list_jobs(
    pool: AsyncConnectionPool, user: CurrentUser, *, status: str | None, spider: str | None,
    tag: str | None, cursor: str | None, limit: int,
) -> tuple[list[Job], str | None]:
    """The user's jobs (an admin's: all), newest first."""
    after_created, after_id = created_id_cursor(cursor)
    params = {"owner": None if user.is_admin else user.id, "status": status, "spider": spider,
              "tag": tag, "after_created": after_created, "after_id": after_id}
    # Binary results: timestamps, UUIDs and arrays parse faster than their text.
    rows, next_cursor = await keyset_page(pool, _LIST_JOBS, params, limit,
                                          lambda r: (r[13], str(r[0])), binary=True)
    return [job_from_row(r, raw=True) for r in rows], next_cursor


def _page(row: tuple) -> Page:
    return Page(url=row[0], final_url=row[1], status=row[2], content_type=row[3], title=row[4],
                depth=row[5], fetched_at=row[6], size=row[7], content_hash=row[8],
                elapsed_ms=row[9], rendered=row[10], error=row[11], etag=row[12],
                last_modified=row[13], change=row[14])


def _prefix(prefix: str | None) -> str | None:
    return _like_prefix(prefix) if prefix else None


def _after(cursor: str | None, arity: int) -> list[str | None]:
    return [str(v) for v in decode_cursor(cursor, arity)] if cursor else [None] * arity


async def list_pages(
    pool: AsyncConnectionPool, job_id: uuid.UUID, *, status: int | None,
    url_prefix: str | None, cursor: str | None, limit: int, errors_only: bool = False,
) -> tuple[list[Page], str | None]:
    """A job's pages by URL (only the failed ones with `errors_only`)."""
    (after,) = _after(cursor, 1)
    params = {"job": job_id, "errors_only": errors_only, "status": status,
              "prefix": _prefix(url_prefix), "after_url": after}
    rows, next_cursor = await keyset_page(pool, _LIST_PAGES, params, limit, lambda r: (r[0],))
    return [_page(r) for r in rows], next_cursor


async def list_links(
    pool: AsyncConnectionPool, job_id: uuid.UUID, *, url_prefix: str | None,
    target_prefix: str | None, cursor: str | None, limit: int,
) -> tuple[list[Link], str | None]:
    """A job's links by (source, target)."""
    after_source, after_target = _after(cursor, 2)
    params = {"job": job_id, "prefix": _prefix(url_prefix),
              "target_prefix": _prefix(target_prefix), "after_source": after_source,
              "after_target": after_target}
    rows, next_cursor = await keyset_page(pool, _LIST_LINKS, params, limit,
                                          lambda r: (r[0], r[1]))
    links = [Link(source_url=r[0], target_url=r[1], count=r[2], anchor_text=r[3], nofollow=r[4])
             for r in rows]
    return links, next_cursor


async def list_items(
    pool: AsyncConnectionPool, job_id: uuid.UUID, *, item_type: str | None,
    url_prefix: str | None, cursor: str | None, limit: int,
) -> tuple[list[Item], str | None]:
    """A job's own items (those its spider yields besides pages and links)."""
    (after,) = _after(cursor, 1)
    params = {"job": job_id, "item_type": item_type, "prefix": _prefix(url_prefix),
              "after": after}
    rows, next_cursor = await keyset_page(pool, _LIST_ITEMS, params, limit, lambda r: (r[0],))
    items = [Item(fingerprint=r[0], item_type=r[1], url=r[2], data=r[3], created_at=r[4])
             for r in rows]
    return items, next_cursor
