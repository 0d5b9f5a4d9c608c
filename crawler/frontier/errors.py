"""The frontier's errors."""

from __future__ import annotations

from core.errors import CrawlgraphError


class FrontierError(CrawlgraphError):
    """A request cannot be stored in, or restored from, the Redis frontier."""

    status_code = 500
