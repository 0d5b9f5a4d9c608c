"""`GET /api/v1/graphs/{build_id}/drawing`: a finished build as the console draws it.

Ownership follows graph builds: another user's build is a 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, get
from litestar.params import FromPath, QueryParameter

from graphs import store
from jobapi.auth import CurrentUser
from jobapi.controllers import AppSettings, Pool, errors
from jobapi.services import graphs as builds
from jobapi.services.drawing import DEFAULT_LIMIT, MAX_LIMIT, Drawing, drawing

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description=(
    "At most this many nodes: a larger graph is cut to its top nodes by PageRank."))]


class DrawingController(Controller):
    path = "/api/v1/graphs"
    tags = ["graphs"]

    @get("/{build_id:uuid}/drawing", operation_id="getGraphDrawing", responses=errors(404, 409))
    async def get_drawing(
        self, request: Request[CurrentUser, Any, Any], pool: Pool, app_settings: AppSettings,
        build_id: FromPath[uuid.UUID], limit: Limit = DEFAULT_LIMIT,
    ) -> Drawing:
        """The build's nodes (labels and metric columns) and edges (flat index pairs), cut to
        the top `limit` nodes by PageRank when larger (`truncated`)."""
        build = await builds.get_build_row(pool, build_id, request.user)
        return await anyio.to_thread.run_sync(  # load_graph refuses a build not done (409)
            lambda: drawing(store.load_graph(app_settings.home, build), build_id,
                            build["level"], limit))
