"""The heartbeat of a running build, kept by a child process of the worker.

graph-tool holds the GIL inside some algorithms (betweenness takes seconds
without letting another thread run), so a heartbeat thread would fall silent
and a healthy build would look abandoned. A child process does not share the
GIL. It reads its settings as one JSON line on stdin, then step names one per
line; it writes each step at once and refreshes `heartbeat_at` every
`every` seconds. End of input (the worker finished, or died: the kernel closes
the pipe even on SIGKILL) ends it, so a dead worker's build stops beating and
is retried. It exits with `LOST` when the build is no longer this attempt's.
The connection string travels on stdin, never on the command line.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import uuid

import psycopg

from graphs import store

LOST = 3


class Heartbeat:
    """Parent side: start the child, tell it the step, stop it."""

    def __init__(self, conninfo: str, claim: store.Claim, every: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "graphs.heartbeat"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, text=True,
        )
        self._send(json.dumps({"conninfo": conninfo, "id": str(claim.id),
                               "attempt": claim.attempt, "every": every}))

    def _send(self, line: str) -> None:
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the child has exited; `lost` tells why

    def step(self, name: str) -> None:
        self._send(name)

    @property
    def lost(self) -> bool:
        """True when the child found that the build is no longer ours."""
        return self._proc.poll() == LOST

    def stop(self) -> None:
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)


def _run(config: dict, fd: int) -> int:
    claim = store.Claim(id=uuid.UUID(config["id"]), attempt=int(config["attempt"]),
                        max_attempts=0, level="", metrics=[], options={})
    every = float(config["every"])
    pending = b""
    step = "claimed"
    with psycopg.connect(config["conninfo"], autocommit=True) as conn:
        next_beat = time.monotonic()
        while True:
            ready, _, _ = select.select([fd], [], [], max(0.0, next_beat - time.monotonic()))
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    return 0
                pending += data
                *lines, pending = pending.split(b"\n")
                if not lines:
                    continue
                step = lines[-1].decode(errors="replace").strip() or step
            if not store.heartbeat(conn, claim, step):
                return LOST
            next_beat = time.monotonic() + every


def main() -> int:
    fd = sys.stdin.fileno()
    first = b""
    while not first.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return 0
        first += chunk
    return _run(json.loads(first), fd)


if __name__ == "__main__":
    sys.exit(main())
