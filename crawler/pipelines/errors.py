"""The storage pipeline's errors."""

from __future__ import annotations

from core.errors import CrawlgraphError


class StorageError(CrawlgraphError):
    """Items could not be stored and cannot be retried as they are."""

    status_code = 500


class StorageUnavailable(StorageError):
    """PostgreSQL cannot be reached right now: keep the batch and retry."""

    status_code = 503


class UrlIdCollision(StorageError):
    """Two URLs of one job hash to the same id: the row that brings the second is refused."""

    status_code = 422
