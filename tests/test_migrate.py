"""Migrations: applied once, recorded, safe to run twice and concurrently."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from core.errors import MigrationError
from core.migrate import load_migrations, upgrade


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def test_template_has_every_table(database_url):
    assert {"users", "jobs", "pages", "outlinks", "urls", "items", "dead_letters", "graph_builds",
            "schema_migrations"} <= _tables(database_url)


def test_upgrade_twice_applies_nothing_the_second_time(database_url):
    assert upgrade(database_url) == []
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert count == len(load_migrations())


def _empty_db(database_url: str, name: str) -> str:
    base = database_url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


def test_concurrent_upgrades_apply_each_file_once(database_url):
    url = _empty_db(database_url, database_url.rsplit("/", 1)[1] + "_empty")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(upgrade(url))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(m.name for m in load_migrations())
    assert "jobs" in _tables(url)


def test_edited_migration_is_refused(database_url, tmp_path: Path):
    for migration in load_migrations():
        (tmp_path / migration.name).write_text(migration.sql)
    first = load_migrations()[0]
    (tmp_path / first.name).write_text(first.sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        upgrade(database_url, tmp_path)


def test_badly_named_file_is_refused(tmp_path: Path):
    (tmp_path / "initial.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        load_migrations(tmp_path)


def test_constraints_refuse_bad_rows(database_url):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO users (username, password_hash, role) VALUES ('x', 'h', 'root')"
            )
