"""The API as the fault tests serve it with uvicorn: settings from the environment, and
the crawler processes it schedules told this test's database and Redis.

    uvicorn --factory tests.faults.apiserver:app

The session's scrapyd runs crawler processes with the session's database in
their environment; a test's own database reaches them as Scrapy settings.
"""

from __future__ import annotations

import os

from litestar import Litestar

from jobapi.app import create_app
from jobapi.settings import Settings


def app() -> Litestar:
    return create_app(Settings.from_env(), crawler_overrides={
        "CRAWLGRAPH_DATABASE_URL": os.environ["DATABASE_URL"],
        "CRAWLGRAPH_REDIS_URL": os.environ["REDIS_URL"],
    })
