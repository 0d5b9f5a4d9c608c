"""`crawlgraph crawl | jobs | show | cancel | delete | pages | users | token` against a real API.

The API runs in a uvicorn subprocess (the factory below wraps `create_app` so
that the session's scrapyd crawlers write into this test's database); the CLI
runs as a subprocess too, finding its credentials in its data directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from core.settings import CREDENTIALS_FILE, Settings, read_credentials
from tests.conftest import free_port
from tests.retentiondata import add_build

REPO = Path(__file__).resolve().parent.parent


def app_for_tests():
    """uvicorn factory: the app from the environment, crawlers pointed at the test's database."""
    from jobapi.app import create_app

    settings = Settings.from_env()
    return create_app(settings, crawler_overrides={
        "CRAWLGRAPH_DATABASE_URL": settings.database_url,
        "CRAWLGRAPH_REDIS_URL": settings.redis_url,
    })


@pytest.fixture
def api_env(stack_settings, database_url, redis_url, scrapyd_url, tmp_path) -> Iterator[dict]:
    """A uvicorn API on a free port and the environment the CLI needs to reach it."""
    home = tmp_path / "home"
    home.mkdir()
    creds = read_credentials(stack_settings.home)
    path = home / CREDENTIALS_FILE
    path.write_text(json.dumps({k: creds[k] for k in ("admin_username", "admin_password",
                                                      "jwt_secret")}))
    path.chmod(0o600)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CRAWLGRAPH_", "DATABASE_URL", "REDIS_URL", "SCRAPYD_URLS"))}
    env.update(CRAWLGRAPH_HOME=str(home), DATABASE_URL=database_url, REDIS_URL=redis_url,
               SCRAPYD_URLS=scrapyd_url, ALLOW_PRIVATE_NETWORKS="1",
               CRAWLGRAPH_API_PORT=str(port), CRAWLGRAPH_LOG_LEVEL="WARNING")
    log = (tmp_path / "api.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.test_cli_jobs:app_for_tests",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
         "warning"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp_path / "api.log").read_text()
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


CLI = [sys.executable, "-m", "cli"]


def cli(env: dict, *args: str, timeout: float = 60, stdin: str | None = None):
    return subprocess.run([*CLI, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


PROGRESS = re.compile(r"pages (\d+)\s+[\d.]+ pages/s\s+errors \d+\s+queue \d+\s+"
                      r"elapsed \d+:\d\d:\d\d")


def test_crawl_wait_shows_progress_and_a_summary_and_exits_0(api_env, mock_server):
    site = mock_server(pages=12)
    done = cli(api_env, "crawl", site.start_url, "--depth", "20", "--wait", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    job_id = re.search(r"job ([0-9a-f-]{36}) submitted", out).group(1)
    assert PROGRESS.search(out), out
    assert f"job {job_id} finished" in out
    ended = re.search(r"responses (\d+) \(robots.txt included\), records stored \d+ ", out)
    assert ended, out
    pages = int(ended.group(1))
    assert re.search(r"pages +\d+: 2xx \d+", out), out  # the stored pages by status class
    assert pages >= 1
    listed = cli(api_env, "pages", job_id, "--limit", "500")
    assert listed.returncode == 0
    # The stats count robots.txt as a page too.
    assert 1 <= listed.stdout.count(f"http://127.0.0.1:{site.port}/p/") <= pages
    jobs = cli(api_env, "jobs")
    assert job_id in jobs.stdout and "finished" in jobs.stdout
    show = cli(api_env, "show", job_id, "--json")
    assert json.loads(show.stdout)["status"] == "finished"
    again = cli(api_env, "cancel", job_id)
    assert again.returncode == 2 and "already finished" in again.stderr
    recrawl = cli(api_env, "crawl", site.start_url, "--depth", "20", "--recrawl-of", job_id,
                  "--wait", timeout=180)
    assert recrawl.returncode == 0, recrawl.stdout + recrawl.stderr
    # The same site again: every page it stores is one the first crawl stored, unchanged.
    changes = re.search(r"changes  against job (\S+): new (\d+) · changed (\d+) · "
                        r"unchanged (\d+) · gone (\d+)", recrawl.stdout)
    assert changes and changes.group(1) == job_id, recrawl.stdout
    assert changes.group(2, 3, 5) == ("0", "0", "0") and int(changes.group(4)) >= 1
    with psycopg.connect(api_env["DATABASE_URL"], autocommit=True) as conn:
        owner = conn.execute("SELECT owner_id FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
        build = add_build(conn, owner, [job_id])
    removed = cli(api_env, "graph", "rm", str(build))
    assert removed.returncode == 0 and f"graph build {build} deleted" in removed.stdout, \
        removed.stderr
    again = cli(api_env, "graph", "rm", str(build))
    assert again.returncode == 2 and f"No graph build {build}" in again.stderr
    deleted = cli(api_env, "delete", job_id)
    assert deleted.returncode == 0, deleted.stderr
    assert f"job {job_id} deleted" in deleted.stdout and "purged" in deleted.stdout
    gone = cli(api_env, "show", job_id)
    assert gone.returncode == 2 and f"There is no job {job_id}" in gone.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_watching_then_cancel_and_a_cancelled_job_exits_1(api_env, mock_server):
    # The job must still run when it is cancelled: with every page taking 1 s and at
    # most 8 requests to a host at once (the throttle), 2000 pages take over 4 minutes.
    site = mock_server(pages=2000, page_delay=1.0)
    # A suite started in the background by a shell without job control inherits SIGINT
    # ignored, and Python then never raises KeyboardInterrupt: the CLI gets it back.
    with subprocess.Popen([*CLI, "crawl", site.start_url, "--wait"], env=api_env,
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, preexec_fn=_default_sigint) as watcher:
        job_id = None
        try:
            first = watcher.stdout.readline()
            job_id = re.search(r"job ([0-9a-f-]{36}) submitted", first).group(1)
            progress = watcher.stdout.readline()
            assert PROGRESS.search(progress), progress
            watcher.send_signal(signal.SIGINT)
            rest, err = watcher.communicate(timeout=30)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
                if job_id:  # a 2000-page crawl left running would load the tests after it
                    cli(api_env, "cancel", job_id)
    assert watcher.returncode == 130, rest + err
    assert f"crawlgraph cancel {job_id}" in rest
    refused = cli(api_env, "delete", job_id)
    assert refused.returncode == 2 and "Cancel it first" in refused.stderr, refused.stderr
    cancelled = cli(api_env, "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    watched = cli(api_env, "show", job_id, "--wait")
    assert watched.returncode == 1
    assert f"job {job_id} cancelled" in watched.stdout


def test_users_token_and_errors(api_env):
    added = cli(api_env, "users", "add", "carol", "--password-stdin", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert "carol (user) created" in added.stdout
    listed = cli(api_env, "users", "list")
    assert "carol" in listed.stdout and "admin" in listed.stdout
    carol = {**api_env, "CRAWLGRAPH_USERNAME": "carol", "CRAWLGRAPH_PASSWORD": "a long password"}
    token = cli(carol, "token", "--fresh")
    assert token.returncode == 0 and token.stdout.count(".") == 2
    cache = Path(api_env["CRAWLGRAPH_HOME"]) / "token.json"
    assert cache.stat().st_mode & 0o777 == 0o600
    assert cli(carol, "users", "list").returncode == 2
    missing = cli(api_env, "show", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 2 and "There is no job" in missing.stderr
    refused = cli(api_env, "crawl", "ftp://example.org/")
    assert refused.returncode == 2 and "start_urls[0]" in refused.stderr
    down = cli({**api_env, "CRAWLGRAPH_API_PORT": str(free_port())}, "jobs")
    assert down.returncode == 2 and "Cannot reach the API" in down.stderr
