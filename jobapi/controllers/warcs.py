"""`/api/v1/jobs/{id}/warcs`: the WARC files of a job (``warc: true``), listed and downloaded."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import FromPath, PathParameter
from litestar.response import File

from jobapi.auth import CurrentUser
from jobapi.controllers import AppSettings, Pool, errors
from jobapi.services import warcs as service

User = Request[CurrentUser, Any, Any]
Name = Annotated[str, PathParameter(max_length=200, description="A name from the list.")]


class WarcController(Controller):
    path = "/api/v1/jobs"
    tags = ["jobs"]

    @get("/{job_id:uuid}/warcs", operation_id="listJobWarcs", responses=errors(404))
    async def list_warcs(self, request: User, pool: Pool,
                         job_id: FromPath[uuid.UUID]) -> service.WarcFileList:
        """The job's WARC files on every node: name, node, bytes, records, closed or not."""
        return await service.list_warcs(pool, job_id, request.user)

    @get("/{job_id:uuid}/warcs/{name:str}", operation_id="getJobWarc",
         responses=errors(404, 409), media_type="application/warc")
    async def get_warc(self, request: User, pool: Pool, app_settings: AppSettings,
                       job_id: FromPath[uuid.UUID], name: Name) -> File:
        """A closed WARC file, streamed; 409 names the node holding it if it is another."""
        path = await service.warc_path(pool, app_settings.home, job_id, name, request.user)
        return File(path, filename=name, media_type="application/warc",
                    content_disposition_type="attachment")
