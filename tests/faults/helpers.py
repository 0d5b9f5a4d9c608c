"""Helpers of the fault and load scenarios (tests/faults): processes, memory, figures.

The crawl helpers (scheduling a `follow` worker on scrapyd, waiting for it,
reading back pages and links) are those of `tests.test_crawl_reliability`;
this module adds what the scenarios need besides: a real API process, memory
sampling of processes, and the load figures file.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent.parent
LOAD_RESULTS = REPO / "bench" / "results" / "verify_load.json"


def wait_for(predicate, seconds: float, what: str, interval: float = 0.2):
    """Poll `predicate` until it is truthy (returned) or `seconds` pass (AssertionError)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


class RssSampler:
    """Samples the resident memory of some processes in a thread; keeps every sample."""

    def __init__(self, pids: Iterable[int], interval: float = 0.5) -> None:
        self.samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in pids}
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def add(self, pid: int) -> None:
        self.samples.setdefault(pid, [])

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in list(self.samples):
                try:
                    rss = psutil.Process(pid).memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.samples[pid].append((time.monotonic() - self._started, rss))
            self._stop.wait(self.interval)

    def peak_mb(self, pid: int) -> float:
        return max((rss for _, rss in self.samples[pid]), default=0) / 2**20


def mb(rss: int) -> float:
    return round(rss / 2**20, 1)


def write_load_results(name: str, results: list[dict]) -> None:
    """Merge one scenario's figures into bench/results/verify_load.json (bench format)."""
    try:
        data = json.loads(LOAD_RESULTS.read_text())
    except (FileNotFoundError, ValueError):
        data = {"bench": "verify_load", "results": []}
    kept = [r for r in data.get("results", []) if not r["name"].startswith(name + ".")]
    data.update(when=datetime.now(UTC).isoformat(timespec="seconds"),
                machine=f"{platform.node()} {os.cpu_count()} cores, load "
                        f"{os.getloadavg()[0]:.1f}",
                results=kept + [{**r, "name": f"{name}.{r['name']}"} for r in results])
    LOAD_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    LOAD_RESULTS.write_text(json.dumps(data, indent=2) + "\n")


class ApiProcess:
    """The job API served by uvicorn in its own process (`tests.faults.apiserver:app`)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "tests.faults.apiserver:app",
                 "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
                 # Clients reuse their connections between submissions; a short
                 # keep-alive races them (the server closes as a request is sent).
                 "--timeout-keep-alive", "60", "--log-level", "warning"],
                cwd=REPO, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the API exited: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        try:
            wait_for(healthy, 60, "the API to answer /health")
        except BaseException:
            self.stop()  # never leave a process behind (nor its Popen unwaited)
            raise
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def schedule_spider(scrapyd_url: str, spider: str, args: dict[str, str],
                    settings: dict[str, object]) -> str:
    """Start one crawler process of any spider on scrapyd; return scrapyd's job id."""
    from urllib.parse import urlencode

    from tests.test_crawl_reliability import _scrapyd

    base, auth = _scrapyd(scrapyd_url)
    data = [("project", "crawlgraph"), ("spider", spider), *args.items()]
    data += [("setting", f"{k}={v}") for k, v in settings.items()]
    response = httpx.post(f"{base}/schedule.json", content=urlencode(data), auth=auth,
                          headers={"Content-Type": "application/x-www-form-urlencoded"},
                          timeout=30)
    body = response.json()
    assert body.get("status") == "ok", body
    return body["jobid"]
