"""schemathesis against the API's own OpenAPI document (/schema/openapi.json).

A real uvicorn serves the app for this module (its own database, the session's
Redis and scrapyd); every operation gets a bounded number of generated
requests with a valid token. The checks: no 5xx answer, and every answer's
status code, content type, headers and body conform to the schema.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import CREDENTIALS_FILE, Settings, read_credentials
from jobapi.users import hash_password
from tests.conftest import TEMPLATE_DB, free_port
from tests.faults.test_api_kill import cancel_on_scrapyd
from tests.test_crawl_reliability import scrapyd_jobs

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "schemathesis-password"
_names = itertools.count()


def app_for_schemathesis():
    """uvicorn factory: few real job submissions (429 after three), crawlers in this database."""
    from jobapi.app import create_app
    from jobapi.ratelimit import Limit, RateLimits

    env = Settings.from_env()
    return create_app(
        env,
        rate_limits=RateLimits(jobs_per_user=Limit(3, 3600)),
        crawler_overrides={"CRAWLGRAPH_DATABASE_URL": env.database_url,
                           "CRAWLGRAPH_REDIS_URL": env.redis_url},
    )


def _with_db(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="module")
def api_server(stack_settings, tmp_path_factory) -> Iterator[str]:
    name = f"schemathesis_{os.getpid()}_{next(_names)}"
    admin = _with_db(stack_settings.database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    database_url = _with_db(stack_settings.database_url, name)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('fuzzer', %s)",
                     (hash_password(PASSWORD),))
    home = tmp_path_factory.mktemp("schemathesis-home")
    creds = read_credentials(stack_settings.home)
    (home / CREDENTIALS_FILE).write_text(json.dumps({"jwt_secret": creds["jwt_secret"]}))
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CRAWLGRAPH_", "DATABASE_URL", "REDIS_URL", "SCRAPYD_URLS"))}
    env.update(CRAWLGRAPH_HOME=str(home), DATABASE_URL=database_url,
               REDIS_URL=stack_settings.redis_url, SCRAPYD_URLS=stack_settings.scrapyd_urls[0],
               ALLOW_PRIVATE_NETWORKS="0", CRAWLGRAPH_LOG_LEVEL="ERROR")
    log_path = home / "api.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory",
             "tests.test_api_schemathesis:app_for_schemathesis", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        # The fuzzed submissions really ran on the session's scrapyd: stop them before
        # their database goes, or they wait for it (storage retries) for the rest of
        # the session.
        _stop_crawls(database_url, stack_settings.scrapyd_urls[0])
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(home, ignore_errors=True)


def _stop_crawls(database_url: str, scrapyd_url: str, timeout: float = 60.0) -> None:
    with psycopg.connect(database_url) as conn:
        ids = {f"{job}-{n}" for job, workers in conn.execute("SELECT id, workers FROM jobs")
               for n in range(workers)}
    cancel_on_scrapyd(scrapyd_url, ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = scrapyd_jobs(scrapyd_url)
        if not {j["id"] for j in listing["pending"] + listing["running"]} & ids:
            return
        time.sleep(0.5)
    raise AssertionError(f"the fuzzed crawls did not stop within {timeout:.0f} s")


@pytest.fixture(scope="module")
def token(api_server) -> str:
    response = httpx.post(f"{api_server}/api/v1/auth/token",
                          json={"username": "fuzzer", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
MAX_EXAMPLES = 25


def test_every_operation_conforms_to_the_schema(api_server, token):
    # schemathesis' lazy pytest fixture does not run on this pytest; drive each
    # operation's Hypothesis strategy directly instead.
    schema = schemathesis.openapi.from_url(f"{api_server}/schema/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures, labels = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert "POST /api/v1/jobs" in labels and "GET /api/v1/jobs/{job_id}" in labels, labels
    assert not failures, "\n\n".join(failures)
    # The generated requests did reach the routes (and were answered, not crashed).
    metrics = httpx.get(f"{api_server}/metrics", headers=headers).text
    posted = [line for line in metrics.splitlines()
              if line.startswith('crawlgraph_api_requests_total{method="POST",'
                                 'route="/api/v1/jobs"')]
    assert sum(int(line.rsplit(" ", 1)[1]) for line in posted) >= MAX_EXAMPLES // 2, posted
    assert 'status="5' not in metrics
