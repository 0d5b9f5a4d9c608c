"""Run a real crawl in a subprocess and read back its items, stats and close reason.

Tests of spiders and middlewares call `run_crawl(spider, args, settings)`: it
starts `python -m tests.crawlrun` (a fresh Twisted reactor per crawl, as in
production) with the project settings (`crawler.settings`, its crawling
middlewares included) and by default Scrapy's in-memory scheduler and a
pipeline writing items to a JSON lines file instead of the frontier and
Postgres (`stack=True` keeps the project's frontier, storage pipeline and
extensions).

With `record_throttle=True` the throttle's in-process state records every
reservation it hands out (`CrawlResult.reservations`: host, reserved start and
the interval the next one must keep, in the throttle's clock), so that a test
asserts the delays the throttle guarantees rather than when the server saw
the requests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from itemadapter import ItemAdapter

REPO = Path(__file__).resolve().parent.parent
RESERVATIONS = "reservations.jsonl"


@dataclass
class CrawlResult:
    items: list[dict[str, Any]]
    stats: dict[str, Any]
    reason: str | None
    returncode: int
    log: str
    pages: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[dict[str, Any]] = field(default_factory=list)


def run_crawl(spider: str, args: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None, *, stack: bool = False,
              env: dict[str, str] | None = None, timeout: float = 120,
              record_throttle: bool = False) -> CrawlResult:
    """Crawl with `spider` (a dotted class path) and return what it produced."""
    with tempfile.TemporaryDirectory(prefix="crawlgraph-crawl-") as out:
        config = {"spider": spider, "args": args or {}, "settings": settings or {},
                  "stack": stack, "out": out, "record_throttle": record_throttle}
        environ = {**os.environ, **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "tests.crawlrun", json.dumps(config)],
                              cwd=REPO, env=environ, capture_output=True, text=True,
                              timeout=timeout)
        items = []
        items_path = Path(out) / "items.jsonl"
        if items_path.exists():
            items = [json.loads(line) for line in items_path.read_text().splitlines() if line]
        stats_path = Path(out) / "stats.json"
        summary = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        reservations_path = Path(out) / RESERVATIONS
        reservations = ([json.loads(line) for line in reservations_path.read_text().splitlines()]
                        if reservations_path.exists() else [])
    result = CrawlResult(items=items, stats=summary.get("stats", {}),
                         reason=summary.get("reason"), returncode=proc.returncode,
                         log=proc.stderr, reservations=reservations)
    for item in items:
        kind = item.pop("_type")
        {"Page": result.pages, "Link": result.links}.get(kind, result.other).append(item)
    return result


# ---------------------------------------------------------------- inside the subprocess
class JsonlWriter:
    """Item pipeline writing every item as one JSON line, with its type."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "a")  # noqa: SIM115

    @classmethod
    def from_crawler(cls, crawler: Any) -> JsonlWriter:
        return cls(os.path.join(crawler.settings["CRAWLRUN_OUT"], "items.jsonl"))

    def process_item(self, item: Any) -> Any:
        data = (dataclasses.asdict(item) if dataclasses.is_dataclass(item)
                else ItemAdapter(item).asdict())
        data["_type"] = type(item).__name__
        self.fh.write(json.dumps(data, default=_json_default) + "\n")
        self.fh.flush()
        return item

    def close_spider(self) -> None:
        self.fh.close()


class StatsDump:
    """Extension writing the final stats and close reason to stats.json."""

    def __init__(self, crawler: Any) -> None:
        from scrapy import signals

        self.crawler = crawler
        crawler.signals.connect(self.closed, signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Any) -> StatsDump:
        return cls(crawler)

    def closed(self, spider: Any, reason: str) -> None:
        path = os.path.join(self.crawler.settings["CRAWLRUN_OUT"], "stats.json")
        with open(path, "w") as fh:
            json.dump({"stats": self.crawler.stats.get_stats(), "reason": reason}, fh,
                      default=_json_default)


def _recording_throttle_state(path: str) -> type:
    """`LocalThrottleState` that also writes every reservation it hands out to `path`."""
    from crawler.middlewares.throttlestate import LocalThrottleState

    class RecordingThrottleState(LocalThrottleState):
        async def acquire(self, host: str, min_delay: float, max_concurrency: int, token: str,
                          lease: float) -> float:
            wait = await super().acquire(host, min_delay, max_concurrency, token, lease)
            if wait >= 0:
                # The in-process state never yields inside a call, so this reads
                # what the reservation left: its `next`, and the interval in force.
                h = await self.get(host)
                interval = max(min_delay, h.get("delay", 0.0), h.get("crawl_delay", 0.0))
                with open(path, "a") as fh:
                    fh.write(json.dumps({"host": host, "start": h["next"] - interval,
                                         "interval": interval}) + "\n")
            return wait

    return RecordingThrottleState


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def main() -> None:
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.misc import load_object
    from scrapy.utils.project import get_project_settings

    config = json.loads(sys.argv[1])
    if config.get("record_throttle"):
        import crawler.middlewares.throttle

        crawler.middlewares.throttle.LocalThrottleState = _recording_throttle_state(
            os.path.join(config["out"], RESERVATIONS))
    settings = get_project_settings()
    extensions = {"tests.crawlrun.StatsDump": 900}
    pipelines = {"tests.crawlrun.JsonlWriter": 100}
    if config["stack"]:
        extensions.update(settings.getdict("EXTENSIONS"))
        pipelines.update(settings.getdict("ITEM_PIPELINES"))
    else:
        settings.set("SCHEDULER", "scrapy.core.scheduler.Scheduler")
    settings.set("EXTENSIONS", extensions)
    settings.set("ITEM_PIPELINES", pipelines)
    settings.set("LOG_LEVEL", "INFO")
    settings.set("CRAWLRUN_OUT", config["out"])
    for name, value in config["settings"].items():
        settings.set(name, value, priority="cmdline")
    process = CrawlerProcess(settings)
    process.crawl(load_object(config["spider"]), **config["args"])
    process.start()


if __name__ == "__main__":
    main()
