"""The bodies of `/api/v1/webhooks`: a webhook to create, as the API shows it, its deliveries.

Request bodies refuse unknown fields and carry their limits in `Meta`, as in
`jobapi.schemas`. The secret is in `WebhookCreated` only: it is shown once,
in the answer that creates it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Event = Literal["job.finished", "job.failed", "job.cancelled", "graph.done", "graph.failed"]
EVENTS: tuple[str, ...] = ("job.finished", "job.failed", "job.cancelled", "graph.done",
                           "graph.failed")
Url = Annotated[str, Meta(min_length=1, max_length=2048, pattern=r"^[^\x00-\x20\x7f]+$",
                          description="An http(s) URL on a public address.")]


class WebhookCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A URL called on the given events: of all your jobs and builds, or of one schedule's jobs."""

    url: Url
    events: Annotated[list[Event], Meta(min_length=1, max_length=5)] = msgspec.field(
        default_factory=lambda: list(EVENTS))
    schedule_id: uuid.UUID | None = None


class Webhook(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    owner_id: int
    schedule_id: uuid.UUID | None
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(Webhook, kw_only=True):
    """The webhook and its signing secret, which no other answer shows."""

    secret: str


class WebhookList(msgspec.Struct, kw_only=True):
    items: list[Webhook]
    next_cursor: str | None


class Attempt(msgspec.Struct, kw_only=True):
    """One call of the URL: the receiver's status and the start of its body, or the error."""

    attempt: int
    attempted_at: datetime
    status: int | None
    body: str | None
    error: str | None
    duration_ms: int


class Delivery(msgspec.Struct, kw_only=True):
    """One event for one webhook: `pending` (to be tried at `next_attempt_at`), `delivered`
    (a 2xx answer) or `failed` (given up after a day)."""

    id: int
    event_id: uuid.UUID
    event: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None
    log: list[Attempt]


class DeliveryList(msgspec.Struct, kw_only=True):
    items: list[Delivery]
    next_cursor: str | None
