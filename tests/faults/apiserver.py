"""The API as the fault tests serve it with uvicorn: settings from the environment, and
the crawler processes it schedules told this test's database and Redis.

    uvicorn --factory tests.faults.apiserver:app

The session's scrapyd runs crawler processes with the session's database in
their environment; a test's own database reaches them as Scrapy settings. The
job recovery runs as in `jobapi.app:app_from_env`;
`CRAWLGRAPH_TEST_RECOVERY_GRACE` shortens its grace period (seconds) and makes
it look every second. `CRAWLGRAPH_TEST_CRAWLER_SETTINGS` (a JSON object) adds
Scrapy settings every crawler process is given, as an operator's node settings
would (names a job body may not set: the throttle's delay, the lease).
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

from litestar import Litestar

from core.settings import Settings
from jobapi.app import create_app


def app() -> Litestar:
    kwargs: dict[str, Any] = {}
    if "recovery_grace_seconds" in inspect.signature(create_app).parameters:
        from jobapi.services import recovery

        grace = os.environ.get("CRAWLGRAPH_TEST_RECOVERY_GRACE")
        kwargs = {"recovery_grace_seconds": float(grace or recovery.GRACE_SECONDS)}
        if grace:
            kwargs["recovery_interval_seconds"] = 1.0
    return create_app(Settings.from_env(), crawler_overrides={
        "CRAWLGRAPH_DATABASE_URL": os.environ["DATABASE_URL"],
        "CRAWLGRAPH_REDIS_URL": os.environ["REDIS_URL"],
        **json.loads(os.environ.get("CRAWLGRAPH_TEST_CRAWLER_SETTINGS") or "{}"),
    }, **kwargs)
