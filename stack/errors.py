"""The local stack's error."""

from __future__ import annotations

from core.errors import CrawlgraphError


class StackError(CrawlgraphError):
    """A local service could not be started, reached or stopped."""
