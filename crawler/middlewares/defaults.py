"""The crawling middlewares and their settings, as `crawler.settings` writes them.

`tests/crawlrun.py` merges these into a test crawl's settings; the settings
themselves are written by name in `crawler/settings.py`, and this module only
reads them back from there.
"""

from __future__ import annotations

from typing import Any

from crawler import settings as _project

CRAWLING_DOWNLOADER_MIDDLEWARES: dict[str, int | None] = dict(_project.DOWNLOADER_MIDDLEWARES)

CRAWLING_SETTINGS: dict[str, Any] = {
    name: getattr(_project, name) for name in (
        "AUTOTHROTTLE_ENABLED", "DOWNLOAD_DELAY", "DOWNLOAD_MAXSIZE", "DOWNLOAD_WARNSIZE",
        "DOWNLOAD_TIMEOUT", "DNS_TIMEOUT", "RETRY_TIMES", "RETRY_HTTP_CODES",
        "REDIRECT_MAX_TIMES", "TEMPLATES_DIR", "CRAWLGRAPH_ROBOTS_TOKEN",
        "CRAWLGRAPH_THROTTLE_MIN_DELAY", "CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY",
        "CRAWLGRAPH_USER_AGENT_MODE",
    )
}
