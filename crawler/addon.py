"""The crawlgraph add-on: the crawler's settings from the environment, in one place.

On in `crawler.settings` (``ADDONS = {"crawler.addon.CrawlgraphAddon": 0}``).
Before any component is built, it fills these settings when a job left them
unset or empty, from `core.settings.Settings.from_env()`, the one reader of
crawlgraph's environment:

- ``CRAWLGRAPH_DATABASE_URL`` from ``DATABASE_URL``;
- ``CRAWLGRAPH_REDIS_URL`` from ``REDIS_URL``;
- ``CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS`` from ``ALLOW_PRIVATE_NETWORKS``
  (the job API's crawler processes inherit it through `Settings.service_env`).

Every component then reads Scrapy settings only. A URL the environment does
not give stays empty: `Settings.from_env` would derive the embedded stack's,
and a crawl with a job id but no stack running would then wait on it instead
of running without storage and with the throttle in the process, as a plain
``scrapy crawl`` does.
"""

from __future__ import annotations

from scrapy.settings import BaseSettings

from core.settings import Settings


class CrawlgraphAddon:
    """Scrapy add-on filling crawlgraph's settings from the environment."""

    def update_settings(self, settings: BaseSettings) -> None:
        env = Settings.from_env()
        if not env.embedded_postgres:
            _fill(settings, "CRAWLGRAPH_DATABASE_URL", env.database_url)
        if not env.embedded_redis:
            _fill(settings, "CRAWLGRAPH_REDIS_URL", env.redis_url)
        _fill(settings, "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS", env.allow_private_networks)


def _fill(settings: BaseSettings, name: str, value: object) -> None:
    """Set `name` to `value` if it is unset or empty, at the priority it was left empty at."""
    if settings.get(name) in (None, ""):
        settings.set(name, value, priority=settings.getpriority(name) or "addon")
