"""Apply the numbered SQL files in `migrations/` to a database.

Each file runs once, in its own transaction, and is recorded with its checksum
in `schema_migrations`. An advisory lock makes concurrent upgrades (two
processes starting at once) safe: the second waits, then finds nothing to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from core.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same in every process.
_LOCK_ID = 0x63726177  # "craw"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_SELECT_APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
_INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read the migration files in version order."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"Migration file {path.name} is not named NNNN_name.sql.",
                hint="Rename it, e.g. 0007_add_column.sql.",
            )
        migrations.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("Two migration files share a version number.")
    return migrations


def pending(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """The names of the migrations in `directory` that this database has not applied."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        applied: set[int] = set()
    else:
        applied = {row[0] for row in conn.execute(_SELECT_APPLIED).fetchall()}
    return [m.name for m in load_migrations(directory) if m.version not in applied]


def upgrade(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Bring the database up to date; return the names of the files applied."""
    migrations = load_migrations(directory)
    applied_now: list[str] = []
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            try:
                conn.execute(_CREATE_TABLE)
                applied = {row[0]: row for row in conn.execute(_SELECT_APPLIED).fetchall()}
                known = {m.version for m in migrations}
                unknown = sorted(set(applied) - known)
                if unknown:
                    raise MigrationError(
                        f"The database has migrations this version does not know: {unknown}.",
                        hint="It was made by a newer crawlgraph; upgrade crawlgraph "
                        "or point DATABASE_URL at another database.",
                    )
                for migration in migrations:
                    row = applied.get(migration.version)
                    if row is not None:
                        if row[2] != migration.checksum:
                            raise MigrationError(
                                f"Migration {migration.name} was changed after it was applied.",
                                hint="Never edit an applied migration; add a new file instead.",
                            )
                        continue
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            _INSERT_APPLIED,
                            (migration.version, migration.name, migration.checksum),
                        )
                    applied_now.append(migration.name)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    except psycopg.Error as exc:
        raise MigrationError(
            f"Could not apply the migrations: {exc.__class__.__name__}: {exc}",
            hint="Check DATABASE_URL and that PostgreSQL is running (`crawlgraph status`).",
        ) from exc
    return applied_now
