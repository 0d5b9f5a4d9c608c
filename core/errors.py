"""The root of crawlgraph's one exception tree, and the errors every layer shares.

Every error says what was wrong and what to do about it (`hint`). Each package
derives its own errors from `CrawlgraphError`; the job API maps them to HTTP
status codes in one place (`jobapi.app`), the command line to exit codes.
"""

from __future__ import annotations

#: What to do when two URLs of a job share one 64-bit id (`urls.id`, the
#: writer's hash of the URL): the storage pipeline and the graph read say it.
URL_ID_COLLISION_HINT = ("At a million URLs in a job the odds are about 3 in 100 million; "
                         "report it with the job id.")


class CrawlgraphError(Exception):
    """Base of every error crawlgraph raises."""

    status_code = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(CrawlgraphError):
    """A setting is missing or has a value that cannot work."""


class MigrationError(CrawlgraphError):
    """The database schema could not be brought up to date."""
