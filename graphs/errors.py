"""The exception tree of `graphs`, rooted at `jobapi.errors.CrawlgraphError`.

The API maps `status_code` to the HTTP answer in one place; the CLI prints the
message and the hint.
"""

from __future__ import annotations

from core.errors import CrawlgraphError


class GraphError(CrawlgraphError):
    """Base of every error raised by `graphs`."""

    status_code = 500


class InvalidGraphRequest(GraphError):
    """A build or export request names an unknown level, metric, format or option."""

    status_code = 422


class GraphNotFound(GraphError):
    """No such build, or it belongs to another user."""

    status_code = 404


class GraphNotReady(GraphError):
    """The build is queued, running or failed, so there is nothing to read yet."""

    status_code = 409


class GraphBuildFailed(GraphError):
    """A build could not be completed (the message says which step and why)."""

    status_code = 500


class BuildInterrupted(GraphError):
    """The worker was asked to stop, or lost its claim on the build, mid-build."""

    status_code = 503
