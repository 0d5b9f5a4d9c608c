"""`/api/v1/.../graphs`: request a graph build of a job, read it, its top nodes, its exports,
the diff of two builds and a schedule's builds as one dynamic GEXF.

Ownership follows jobs: a build of another user's job, or another user's
build, is a 404. A bad level, metric, option, sort key or export format is a
422 that lists what is allowed.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream

from graphs import store
from graphs.diff import CSV_HEADER, GraphDiff, diff_rows
from graphs.errors import InvalidGraphRequest
from graphs.exports import MEDIA_TYPES, SUFFIXES, exporter
from graphs.models import GraphBuild, GraphBuildRequest, GraphNode
from jobapi.auth import CurrentUser
from jobapi.controllers import AppSettings, Pool, errors
from jobapi.services import graphdiff, retention
from jobapi.services import graphs as service
from jobapi.services.jobs import get_job_for_user


class GraphNodeList(msgspec.Struct, kw_only=True):
    """A sorted page of a build's nodes."""

    build_id: uuid.UUID
    sort: str
    order: str
    offset: int
    nodes: list[GraphNode]


User = Request[CurrentUser, Any, Any]
Sort = Annotated[str, QueryParameter(max_length=64, description=(
    "A node column: pagerank, in_degree, out_degree, in_weight, out_weight, hub, authority, "
    "betweenness, closeness, kcore, component, strong_component, community, pages, label, "
    "discovered, canonical."))]
Order = Annotated[str, QueryParameter(max_length=4, pattern=r"^[a-z]+$",
                                      description="desc (default) or asc.")]
Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Nodes per page.")]
Offset = Annotated[int, QueryParameter(ge=0, le=100_000_000, description="Nodes to skip.")]
# Letters only: a value that cannot be one of the names is refused even where it is
# ignored (`table` outside csv), never passed on with a NUL in it.
Format = Annotated[str, QueryParameter(max_length=16, pattern=r"^[a-z]+$",
                                       description="graphml, gexf, json or csv.")]
Metric = Annotated[str, QueryParameter(max_length=64, pattern=r"^[a-z_]+$", description=(
    "The node column whose change ranks the movers (pagerank, in_degree, ..., pages); "
    "both builds must have computed it."))]
Top = Annotated[int, QueryParameter(ge=1, le=1000, description="Movers listed.")]
DiffLimit = Annotated[int, QueryParameter(ge=0, le=10_000, description=(
    "Nodes and links listed per kind of change (counts are always complete)."))]
DiffFormat = Annotated[str, QueryParameter(max_length=4, pattern=r"^[a-z]+$",
                                           description="json (default) or csv.")]
Level = Annotated[str, QueryParameter(max_length=8, pattern=r"^[a-z]+$",
                                      description="page (default), host or domain.")]
Table = Annotated[str, QueryParameter(max_length=8, pattern=r"^[a-z]+$",
                                      description="For csv: nodes or edges.")]


class GraphController(Controller):
    path = "/api/v1"
    tags = ["graphs"]

    @post("/jobs/{job_id:uuid}/graphs", operation_id="createGraphBuild", status_code=202,
          responses=errors(404))
    async def create_build(
        self, request: User, pool: Pool, job_id: FromPath[uuid.UUID],
        data: JSONBody[GraphBuildRequest],
    ) -> GraphBuild:
        """Queue a graph build of a job's links (several jobs: `extra_jobs`); 202 with the build.

        A graph worker picks it up; poll `GET /api/v1/graphs/{id}` until `status` is `done`.
        """
        data.validate()
        jobs = [job_id, *[j for j in data.extra_jobs if j != job_id]]
        for job in jobs:
            await get_job_for_user(pool, job, request.user)
        build_id = await service.create_build(pool, request.user.id, jobs, data)
        return service.to_build(await service.get_build_row(pool, build_id, request.user))

    @get("/graphs/{build_id:uuid}", operation_id="getGraphBuild", responses=errors(404))
    async def get_build(self, request: User, pool: Pool,
                        build_id: FromPath[uuid.UUID]) -> GraphBuild:
        """A build: status, step, node and edge counts, seconds per step, graph-level figures."""
        return service.to_build(await service.get_build_row(pool, build_id, request.user))

    @delete("/graphs/{build_id:uuid}", operation_id="deleteGraphBuild", status_code=202,
            responses=errors(404, 409))
    async def delete_build(self, request: User, pool: Pool,
                           build_id: FromPath[uuid.UUID]) -> retention.Deletion:
        """Delete a build that is not being built: it leaves every read at once, and its
        nodes and graph file are purged in the background."""
        return await retention.delete_build(pool, build_id, request.user)

    @get("/graphs/{build_id:uuid}/nodes", operation_id="listGraphNodes",
         responses=errors(404, 409))
    async def list_nodes(
        self, request: User, pool: Pool, build_id: FromPath[uuid.UUID],
        sort: Sort = "pagerank", order: Order = "desc", limit: Limit = 20, offset: Offset = 0,
    ) -> GraphNodeList:
        """A finished build's nodes sorted by a metric, e.g. the top 20 pages by PageRank."""
        build = await service.get_build_row(pool, build_id, request.user)
        nodes = await service.list_nodes(pool, build, sort, order, limit, offset)
        return GraphNodeList(build_id=build_id, sort=sort, order=order, offset=offset,
                             nodes=nodes)

    @get("/graphs/{build_id:uuid}/export", operation_id="exportGraph",
         responses=errors(404, 409))
    async def export(
        self, request: User, pool: Pool, app_settings: AppSettings,
        build_id: FromPath[uuid.UUID],
        format: Format = "gexf", table: Table = "nodes",
    ) -> Stream:
        """The graph as a file, streamed: GraphML, GEXF 1.3 (Gephi), JSON node-link or CSV."""
        write = exporter(format, table)
        build = await service.get_build_row(pool, build_id, request.user)
        store.require_done(build)
        graph = await anyio.to_thread.run_sync(store.load_graph, app_settings.home, build)

        def chunks() -> Iterator[bytes]:
            for chunk in write(graph):
                yield chunk.encode()

        name = f"{build['level']}-{build_id}" + (f"-{table}" if format == "csv" else "")
        return Stream(chunks(), media_type=MEDIA_TYPES[format], headers={
            "Content-Disposition": f'attachment; filename="{name}{SUFFIXES[format]}"'})


    @get("/graphs/{build_id:uuid}/diff/{other_id:uuid}", operation_id="diffGraphBuilds",
         responses={200: ResponseSpec(data_container=GraphDiff, generate_examples=False,
                                      description="The diff (JSON), or its rows (CSV)."),
                    **errors(404, 409)})
    async def diff(
        self, request: User, pool: Pool, app_settings: AppSettings,
        build_id: FromPath[uuid.UUID], other_id: FromPath[uuid.UUID],
        metric: Metric = "pagerank", top: Top = 20, limit: DiffLimit = 100,
        format: DiffFormat = "json",
    ) -> Response:
        """What changed from build `build_id` to `other_id` (same level): nodes and links added
        and removed, the top movers of a metric, components that merged or split."""
        if format not in ("json", "csv"):
            raise InvalidGraphRequest(f"Unknown diff format {format!r}.", hint="Use json or csv.")
        result = await graphdiff.diff(pool, app_settings.home, build_id, other_id, request.user,
                                      metric=metric, top=top, limit=limit)
        if format == "json":
            return Response(msgspec.json.encode(result), media_type="application/json")
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([CSV_HEADER, *diff_rows(result)])
        return Response(out.getvalue(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="diff-{build_id}-{other_id}.csv"'})

    @get("/schedules/{schedule_id:uuid}/graphs.gexf", operation_id="exportScheduleGraphs",
         responses=errors(404, 409))
    async def series(self, request: User, pool: Pool, app_settings: AppSettings,
                     schedule_id: FromPath[uuid.UUID], level: Level = "page") -> Stream:
        """A schedule's crawls as one dynamic GEXF 1.3 for Gephi's timeline (time i: crawl i).

        409 when a finished crawl has no finished build of the level; the answer names them."""
        chunks = await graphdiff.series(pool, app_settings.home, schedule_id, request.user, level)
        return Stream((c.encode() for c in chunks), media_type=MEDIA_TYPES["gexf"], headers={
            "Content-Disposition": f'attachment; filename="schedule-{schedule_id}-{level}.gexf"'})
