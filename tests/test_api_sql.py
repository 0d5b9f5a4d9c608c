"""The job API's named SQL blocks: each name once, every fragment defined."""

from __future__ import annotations

import pytest

from jobapi.sql import QUERIES, load_queries


def test_a_name_defined_twice_is_refused_loudly() -> None:
    one = "-- name: owner\nSELECT owner_id FROM schedules WHERE id = %s;\n"
    two = "-- name: owner\nSELECT id FROM users WHERE id = %s;\n"
    assert load_queries([one]) == {"owner": "SELECT owner_id FROM schedules WHERE id = %s"}
    with pytest.raises(ValueError, match="'owner' is defined twice"):
        load_queries([one, two])


def test_fragments_are_filled_in_and_a_missing_one_is_refused() -> None:
    text = "-- fragment: cols\nid, name\n-- name: q\nSELECT {cols} FROM t;\n"
    assert load_queries([text]) == {"q": "SELECT id, name FROM t"}
    with pytest.raises(ValueError, match="names a fragment"):
        load_queries(["-- name: q\nSELECT {cols} FROM t;\n"])


def test_the_shipped_files_load_with_one_query_per_name() -> None:
    # Loading raised at import if two files shared a name; both owner queries exist apart.
    assert "schedule_owner" in QUERIES and "schedule_owner_user" in QUERIES
    assert "FROM users" in QUERIES["schedule_owner_user"]
    assert "FROM schedules" in QUERIES["schedule_owner"]
