"""The local stack's own settings: what only the embedded services read.

Everything else comes from `core.settings.Settings.from_env()`; these two
matter only to the embedded PostgreSQL cluster.

- `CRAWLGRAPH_PG_BIN`: where the PostgreSQL server binaries are (default: the
  newest of Debian's PostgreSQL versions, else `initdb` on `PATH`);
- `CRAWLGRAPH_PG_USER`: the unprivileged user the cluster runs as when
  crawlgraph runs as root (default `postgres`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

#: The checkout: scrapyd runs the project from it, the API and workers start in it.
REPO_ROOT = Path(__file__).resolve().parent.parent


class StackSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Settings of the embedded services, read from the stack's environment."""

    pg_bin: str | None = None
    pg_user: str = "postgres"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StackSettings:
        return cls(
            pg_bin=environ.get("CRAWLGRAPH_PG_BIN") or None,
            pg_user=environ.get("CRAWLGRAPH_PG_USER") or "postgres",
        )
