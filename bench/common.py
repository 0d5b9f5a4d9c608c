"""What every benchmark shares: a private stack, the machine line, the table, the results file.

A benchmark starts the services it needs with `start_stack` (the same code as
`crawlgraph up`, in a temporary directory on free loopback ports), prints its
figures next to their baselines with `print_table`, and writes them with
`write_results` to `bench/results/<name>.json`.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stack import Stack  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stack(only: Iterable[str], *, allow_private: bool = True) -> tuple[Stack, Path]:
    """The services named in `only`, started in a new temporary data directory."""
    home = Path(tempfile.mkdtemp(prefix="crawlgraph-bench-"))
    os.chmod(home, 0o755)  # PostgreSQL runs as its own user when we are root
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "SCRAPYD_URLS"}}
    env.update(CRAWLGRAPH_HOME=str(home), CRAWLGRAPH_PG_PORT=str(free_port()),
               CRAWLGRAPH_REDIS_PORT=str(free_port()), CRAWLGRAPH_SCRAPYD_PORT=str(free_port()),
               CRAWLGRAPH_API_PORT=str(free_port()))
    if allow_private:
        env["ALLOW_PRIVATE_NETWORKS"] = "1"
    stack = Stack(env, only=set(only))
    stack.up()
    return stack, home


def machine() -> str:
    """What the figures ran on; the load average says how busy the machine was meanwhile."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
            f"{platform.system()}, load average {load}")


def write_results(name: str, results: list[dict[str, Any]], **extra: Any) -> None:
    """`bench/results/<name>.json` in the shape every benchmark writes."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"bench": name, "when": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": machine(), **extra, "results": results}
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    """Figures as columns: figure, value, baseline, ratio, target."""
    header = ("figure", "value", "baseline", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def make_job(database_url: str, spider: str = "bench") -> str:
    """A job row (of a user named bench) for rows to belong to; returns its id."""
    import psycopg

    job_id = str(uuid.uuid4())
    with psycopg.connect(database_url) as conn:
        user = conn.execute("INSERT INTO users (username, password_hash) VALUES (%s, 'x') "
                            "ON CONFLICT (username) DO UPDATE SET role = users.role "
                            "RETURNING id", ("bench",)).fetchone()[0]
        conn.execute("INSERT INTO jobs (id, owner_id, spider) VALUES (%s, %s, %s)",
                     (job_id, user, spider))
    return job_id
