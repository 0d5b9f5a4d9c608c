"""Graph builds for the API, on the async pool: `graphs.store`'s SQL and row shapes.

A user sees only builds they own; an admin sees all. Another user's build is
a 404, exactly like an unknown one.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from graphs import store
from graphs.errors import GraphNotFound
from graphs.models import GraphBuild, GraphBuildRequest, GraphNode


def _may_see(build: dict[str, Any], user: Any) -> bool:
    return build["owner_id"] == user.id or getattr(user, "role", "") == "admin"


def to_build(row: dict[str, Any]) -> GraphBuild:
    return GraphBuild(
        id=row["id"], status=row["status"], level=row["level"], jobs=list(row["jobs"]),
        metrics=list(row["metrics"]), options=row["options"], node_count=row["node_count"],
        edge_count=row["edge_count"], timings=row["timings"], summary=row["summary"],
        attempts=row["attempts"], step=row["step"], error=row["error"],
        created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def create_build(pool: AsyncConnectionPool, owner_id: int, job_ids: list[uuid.UUID],
                       request: GraphBuildRequest) -> uuid.UUID:
    """Queue a build (the caller has checked that the user may see every job)."""
    request.validate()
    build_id = uuid.uuid4()
    params = store.insert_params(build_id, owner_id, job_ids, request, None)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(store.INSERT_BUILD, params)
        await conn.execute(store.INSERT_BUILD_JOBS, (build_id, job_ids))
        await conn.execute(store.NOTIFY, (store.NOTIFY_CHANNEL, str(build_id)))
    return build_id


async def get_build_row(pool: AsyncConnectionPool, build_id: uuid.UUID,
                        user: Any) -> dict[str, Any]:
    """The build row if `user` may see it; GraphNotFound (404) otherwise."""
    async with pool.connection() as conn:
        cur = await conn.execute(store.SELECT_BUILD, (build_id,))
        row = await cur.fetchone()
    if row is None or not _may_see(store.row_to_build(row), user):
        raise build_not_found(build_id)
    return store.row_to_build(row)


def build_not_found(build_id: uuid.UUID) -> GraphNotFound:
    return GraphNotFound(f"No graph build {build_id}.",
                         hint="Use the id from the answer of POST /api/v1/jobs/{id}/graphs.")


async def list_nodes(pool: AsyncConnectionPool, build: dict[str, Any], sort: str, order: str,
                     limit: int, offset: int) -> list[GraphNode]:
    """A sorted page of a finished build's nodes, from `graph_nodes` (no file load)."""
    store.require_done(build)
    query = store.nodes_query(build, sort, order)
    async with pool.connection() as conn:
        cur = await conn.execute(query, {"id": build["id"], "limit": limit, "offset": offset})
        rows = await cur.fetchall()
    return [GraphNode(**dict(zip(store.NODE_FIELDS, row, strict=True))) for row in rows]

