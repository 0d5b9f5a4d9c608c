"""The API as the fault tests serve it with uvicorn: settings from the environment, and
the crawler processes it schedules told this test's database and Redis.

    uvicorn --factory tests.faults.apiserver:app

The session's scrapyd runs crawler processes with the session's database in
their environment; a test's own database reaches them as Scrapy settings.
`CRAWLGRAPH_TEST_RECOVERY_GRACE` shortens the recovery's grace period (seconds).
"""

from __future__ import annotations

import inspect
import os

from litestar import Litestar

from jobapi.app import create_app
from jobapi.settings import Settings


def app() -> Litestar:
    kwargs = {}
    grace = os.environ.get("CRAWLGRAPH_TEST_RECOVERY_GRACE")
    if grace and "recovery_grace_seconds" in inspect.signature(create_app).parameters:
        kwargs = {"recovery_grace_seconds": float(grace), "recovery_interval_seconds": 1.0}
    return create_app(Settings.from_env(), crawler_overrides={
        "CRAWLGRAPH_DATABASE_URL": os.environ["DATABASE_URL"],
        "CRAWLGRAPH_REDIS_URL": os.environ["REDIS_URL"],
    }, **kwargs)
