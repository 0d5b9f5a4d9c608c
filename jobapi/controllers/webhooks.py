"""`/api/v1/webhooks`: URLs called when jobs and graph builds end; create, list, delete,
and read each delivery with its attempts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, FromPath

from jobapi.auth import CurrentUser
from jobapi.controllers import AppSettings, Cursor, Pool, RowsPerPage, errors
from jobapi.services import webhooks as service
from jobapi.services.webhooks_models import (
    DeliveryList,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
)


class WebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]

    @post("/", operation_id="createWebhook", status_code=201, responses=errors(413))
    async def create_webhook(
        self, request: Request[CurrentUser, Any, Any],
        data: Annotated[WebhookCreate, BodyKwarg(media_type=RequestEncodingType.JSON, examples=[
            Example(summary="Every end of a job or build",
                    value={"url": "https://example.org/crawlgraph-hook"})])],
        pool: Pool, app_settings: AppSettings,
    ) -> WebhookCreated:
        """Create a webhook: `url` is POSTed a signed JSON body on each of `events`
        (default all: job.finished, job.failed, job.cancelled, graph.done, graph.failed),
        for all your jobs and builds or, with `schedule_id`, for that schedule's jobs.

        The answer holds the signing `secret`; no other answer shows it. A URL on a
        private address is refused (422) unless private networks are allowed.
        """
        return await service.create_webhook(
            pool, request.user, data, allow_private_networks=app_settings.allow_private_networks)

    @get("/", operation_id="listWebhooks", responses=errors())
    async def list_webhooks(self, request: Request[CurrentUser, Any, Any], pool: Pool,
                            cursor: Cursor = None, limit: RowsPerPage = 50) -> WebhookList:
        """Your webhooks (all of them for an admin), newest first."""
        items, next_cursor = await service.list_webhooks(pool, request.user, cursor=cursor,
                                                         limit=limit)
        return WebhookList(items=items, next_cursor=next_cursor)

    @get("/{webhook_id:uuid}/deliveries", operation_id="listWebhookDeliveries",
         responses=errors(404))
    async def list_deliveries(self, request: Request[CurrentUser, Any, Any],
                              webhook_id: FromPath[uuid.UUID], pool: Pool,
                              cursor: Cursor = None, limit: RowsPerPage = 50) -> DeliveryList:
        """The webhook's deliveries, newest first, each with every attempt: the status and
        the first 1,000 characters of the receiver's answer, or the error."""
        items, next_cursor = await service.list_deliveries(pool, webhook_id, request.user,
                                                           cursor=cursor, limit=limit)
        return DeliveryList(items=items, next_cursor=next_cursor)

    @delete("/{webhook_id:uuid}", operation_id="deleteWebhook", status_code=204,
            responses=errors(404))
    async def delete_webhook(self, request: Request[CurrentUser, Any, Any],
                             webhook_id: FromPath[uuid.UUID], pool: Pool) -> None:
        """Delete a webhook and its deliveries; pending ones are not sent."""
        await service.delete_webhook(pool, webhook_id, request.user)
