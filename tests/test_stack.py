"""The embedded local stack: start, idempotent restart, kill -9 recovery, stop, errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from stack import Stack
from stack.errors import StackError
from tests.conftest import make_home, stack_environ


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def home():
    path = make_home()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stack(home):
    stack = Stack(stack_environ(home))
    yield stack
    stack.down()


def test_up_twice_then_kill_redis_then_down(stack, home):
    started = stack.up()
    assert started == ["postgres", "redis", "scrapyd", "api", "graph-worker-1", "scheduler",
                       "webhook-sender", "purger"]
    rows = stack.status()
    assert all(row["healthy"] for row in rows), rows
    pids = {row["service"]: row["pid"] for row in rows}
    for name in pids:
        assert (home / f"{name}.pid").exists()
    creds = home / "credentials.json"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"

    # A second `up` changes nothing.
    assert Stack(stack.environ).up() == []
    assert {row["service"]: row["pid"] for row in stack.status()} == pids

    # kill -9 Redis: the next `up` restarts Redis alone.
    os.kill(pids["redis"], signal.SIGKILL)
    assert _wait_dead(pids["redis"])
    restarted = Stack(stack.environ)
    assert restarted.up() == ["redis"]
    after = {row["service"]: row["pid"] for row in restarted.status()}
    assert after["redis"] != pids["redis"]
    assert {k: v for k, v in after.items() if k != "redis"} == {
        k: v for k, v in pids.items() if k != "redis"
    }

    # A changed setting restarts the services that read it, and only those.
    changed = Stack({**stack.environ, "ALLOW_PRIVATE_NETWORKS": "0"})
    assert changed.up() == ["scrapyd", "api", "graph-worker-1", "scheduler", "webhook-sender",
                            "purger"]
    after = {row["service"]: row["pid"] for row in changed.status()}
    assert after["postgres"] == pids["postgres"]
    stack.environ["ALLOW_PRIVATE_NETWORKS"] = "0"

    # `down` leaves none of its processes (nor their children) running.
    children = []
    for pid in after.values():
        children += [p.pid for p in psutil.Process(pid).children(recursive=True)]
    assert sorted(Stack(stack.environ).down()) == sorted(after)
    for pid in [*after.values(), *children]:
        assert _wait_dead(pid), f"process {pid} survived down"
    assert not any((home / f"{name}.pid").exists() for name in after)
    assert all(not row["healthy"] for row in Stack(stack.environ).status())


def test_down_stops_only_what_up_started(home):
    env = stack_environ(home)
    only_redis = Stack(env, only={"redis"})
    only_redis.up()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # A pid file that points at a process `up` did not start is not ours.
        (home / "api.pid").write_text(f"{stranger.pid}\n")
        assert Stack(env).down() == ["redis"]
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_api_runs_in_as_many_processes_as_configured_and_down_stops_them(home):
    stack = Stack(stack_environ(home, CRAWLGRAPH_API_WORKERS="2"),
                  only={"postgres", "redis", "api"})
    try:
        stack.up()
        api = next(s for s in stack.services if s.name == "api")
        supervisor = psutil.Process(api.pid())

        def workers() -> list[psutil.Process]:  # not multiprocessing's resource tracker
            return [p for p in supervisor.children() if "spawn_main" in " ".join(p.cmdline())]

        deadline = time.monotonic() + 30
        while len(workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        started = workers()
        assert len(started) == 2, started
        assert api.healthy()
    finally:
        stack.down()
    assert all(_wait_dead(worker.pid) for worker in started)


def test_port_in_use_is_named(home):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        stack = Stack(stack_environ(home, CRAWLGRAPH_REDIS_PORT=str(port)), only={"redis"})
        with pytest.raises(StackError) as info:
            stack.up()
    assert f"Port {port} for redis is in use" in info.value.message
    assert "CRAWLGRAPH_REDIS_PORT" in info.value.hint


def test_missing_binary_is_named(home, monkeypatch):
    monkeypatch.setenv("PATH", str(home))  # an empty directory: no redis-server in it
    stack = Stack(stack_environ(home), only={"redis"})
    with pytest.raises(StackError) as info:
        stack.up()
    assert "redis-server was not found" in info.value.message
    assert "make setup" in info.value.hint


def test_data_directory_of_another_version_is_refused(home):
    (home / "VERSION").write_text("0\n")
    with pytest.raises(StackError) as info:
        Stack(stack_environ(home), only={"redis"}).up()
    assert "another crawlgraph version" in info.value.message
    assert "CRAWLGRAPH_HOME" in info.value.hint


def test_postgres_data_of_another_major_version_is_refused(home):
    (home / "postgres").mkdir()
    (home / "postgres" / "PG_VERSION").write_text("9\n")
    with pytest.raises(StackError) as info:
        Stack(stack_environ(home), only={"postgres"}).up()
    assert "version 9" in info.value.message


def test_cli_reports_errors_in_one_line_with_a_hint(home):
    env = stack_environ(home)
    (home / "VERSION").write_text("0\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "up"], env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error: The data directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_status_exit_code_says_whether_all_are_healthy(home):
    env = stack_environ(home)
    result = subprocess.run(
        [sys.executable, "-m", "cli", "status"], env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "stopped" in result.stdout
