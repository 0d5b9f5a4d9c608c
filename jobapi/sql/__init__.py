"""The job API's SQL, kept in `api.sql` as named blocks (`-- name: <name>`)."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import LiteralString, cast


def load_queries(text: str) -> dict[str, LiteralString]:
    """Split a .sql file into {name: query} at its `-- name:` lines."""
    queries: dict[str, LiteralString] = {}
    for block in re.split(r"^-- name: *", text, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        queries[name.strip()] = cast(LiteralString, "\n".join(lines).strip().rstrip(";"))
    return queries


QUERIES = load_queries(files(__package__).joinpath("api.sql").read_text())
