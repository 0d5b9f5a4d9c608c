"""Process supervision: spawn a service in a session of its own, wait for it, stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from stack.errors import StackError

START_TIMEOUT = 60.0
# Services this process started and has not stopped yet: kept so that they can
# be reaped (and are not reported as leaked while still running on purpose).
CHILDREN: dict[int, subprocess.Popen] = {}


def log(message: str) -> None:
    print(f"crawlgraph: {message}", flush=True)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def spawn(argv: list[str], env: dict[str, str], cwd: Path, logfile: Path) -> int:
    """Start `argv` in a new session, its output appended to `logfile`; return its pid."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    CHILDREN[proc.pid] = proc
    return proc.pid


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    tail = ""
    if log is not None and log.exists():
        tail = "\n  last log lines:\n    " + "\n    ".join(log.read_text().splitlines()[-8:])
    raise StackError(
        f"{what} did not become healthy within {timeout:.0f} s.{tail}",
        hint="Read its log in the data directory's logs/ folder.",
    )


def reap(pid: int) -> bool:
    """Wait for `pid` if this process spawned it and it has exited; True then.

    A service killed behind the stack's back (kill -9, a crash) would otherwise
    stay an unwaited child: a zombie, and a ResourceWarning at exit.
    """
    child = CHILDREN.get(pid)
    if child is None or child.poll() is None:
        return False
    del CHILDREN[pid]
    return True


def terminate_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the service's process group (it and its children), then SIGKILL."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        reap(pid)
        return
    if pgid == os.getpgid(0):
        # Never signal our own group: a service always runs in a session of its own.
        raise StackError(f"Refusing to stop pid {pid}: it is in crawlgraph's own process group.")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    child = CHILDREN.pop(pid, None)
    while time.monotonic() < deadline:
        if child is not None:
            child.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if child is not None:
        child.wait()
