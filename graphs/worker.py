"""`crawlgraph graph-worker`: the long-running process that builds queued graphs.

It takes builds from Postgres durably: a claim is `FOR UPDATE SKIP LOCKED` on
`graph_builds` (several workers never take the same build), and a heartbeat
process refreshes `heartbeat_at` every `heartbeat_every` seconds while the build
runs (from a child process, `graphs.heartbeat`, because graph-tool holds the
GIL in some algorithms). A `running` build whose heartbeat is older than `stale_after` seconds
(its worker was killed or its machine died) is claimed again by any worker,
up to `max_attempts` times, then marked failed. Workers wake on
`NOTIFY crawlgraph_graph_builds` and poll as a fallback.

SIGTERM or SIGINT stops the worker cleanly: idle, it exits at once; mid-build,
it abandons the build at the next step and puts it back in the queue without
using up an attempt. It logs one line per build event (claimed, step
timings, done, failed, requeued, expired).

The local stack starts it; by hand: `crawlgraph graph-worker`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from graphs import store
from graphs.errors import BuildInterrupted
from graphs.heartbeat import Heartbeat
from graphs.pipeline import run_claimed

log = logging.getLogger("crawlgraph.graph_worker")


@dataclass
class WorkerConfig:
    """How often to poll, heartbeat, and when a running build counts as abandoned."""

    poll_seconds: float = 2.0
    heartbeat_every: float = 5.0
    stale_after: float = 60.0
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


class Worker:
    """Claims and runs builds until `stop()` (or a signal) is called."""

    def __init__(self, conninfo: str, home: Path, config: WorkerConfig | None = None) -> None:
        self.conninfo = conninfo
        self.home = Path(home)
        self.config = config or WorkerConfig()
        self._stop = threading.Event()
        self.done = 0

    def stop(self, *_: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, once: bool = False) -> int:
        """Work until stopped; with `once`, stop when the queue is empty. Return builds done.

        A lost database connection is logged and retried with backoff (up to 30 s);
        a build it interrupted keeps its claim until the heartbeat goes stale, and is
        then retried like any abandoned build.
        """
        cfg = self.config
        self.done = 0
        delay = 1.0
        log.info("graph-worker %s started (stale after %gs)", cfg.name, cfg.stale_after)
        while not self._stop.is_set():
            try:
                self._serve(once)
                break
            except psycopg.OperationalError as exc:
                log.warning("graph-worker %s: database unavailable (%s); retrying in %gs",
                            cfg.name, type(exc).__name__, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
        log.info("graph-worker %s stopped", cfg.name)
        return self.done

    def _serve(self, once: bool) -> None:
        cfg = self.config
        with psycopg.connect(self.conninfo, autocommit=True) as conn, \
                psycopg.connect(self.conninfo, autocommit=True) as listener:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(store.NOTIFY_CHANNEL)))
            while not self._stop.is_set():
                for build_id, attempts in store.expire(conn, cfg.stale_after):
                    log.info("build %s failed: interrupted %d times, no attempt left",
                             build_id, attempts)
                claim = store.claim(conn, cfg.name, cfg.stale_after)
                if claim is None:
                    if once:
                        return
                    # Wake on NOTIFY, or after the poll interval (for stale builds, signals).
                    for _ in listener.notifies(timeout=cfg.poll_seconds, stop_after=1):
                        pass
                    continue
                if self._process(conn, claim):
                    self.done += 1

    def _process(self, conn: psycopg.Connection, claim: store.Claim) -> bool:
        log.info("build %s claimed: level=%s attempt %d/%d metrics=%s", claim.id, claim.level,
                 claim.attempt, claim.max_attempts, ",".join(claim.metrics))
        beat = Heartbeat(self.conninfo, claim, self.config.heartbeat_every)
        started = time.perf_counter()

        def on_step(name: str) -> None:
            if self._stop.is_set():
                raise BuildInterrupted("The worker was asked to stop.")
            if beat.lost:
                raise BuildInterrupted("Another worker took the build over.")
            beat.step(name)

        try:
            result = run_claimed(conn, self.conninfo, self.home, claim, on_step)
        except BuildInterrupted as exc:
            requeued = store.requeue(conn, claim)
            log.info("build %s %s: %s", claim.id, "requeued" if requeued else "abandoned",
                     exc.message)
            return False
        except psycopg.OperationalError:
            raise  # the database went away: reconnect; the claim goes stale and is retried
        except Exception as exc:  # a build error must not kill the worker
            store.fail(conn, claim, f"{type(exc).__name__}: {exc}", {})
            log.exception("build %s failed: %s: %s", claim.id, type(exc).__name__, exc)
            return False
        finally:
            beat.stop()
        seconds = time.perf_counter() - started
        if not result["stored"]:
            log.info("build %s finished but was no longer ours; result dropped", claim.id)
            return False
        steps = " ".join(f"{k}={v:.3f}s" for k, v in result["timings"].items())
        log.info("build %s done: %d nodes, %d edges in %.3fs (%s)", claim.id, result["nodes"],
                 result["edges"], seconds, steps)
        return True
