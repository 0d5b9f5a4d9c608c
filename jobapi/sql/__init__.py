"""The job API's SQL, kept in this package's `.sql` files as named blocks.

A block starts with `-- name: <name>` and is a query, read with
`QUERIES["<name>"]`; a block that starts with `-- fragment: <name>` is a piece
(a column list) that queries name as `{<name>}` and that is written once.
Every value is a parameter; nothing is formatted into SQL at run time.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import LiteralString, cast

_BLOCK = re.compile(r"^-- (name|fragment): *", flags=re.MULTILINE)


def load_queries(texts: list[str]) -> dict[str, LiteralString]:
    """Split .sql texts into {name: query} at their `-- name:` lines, fragments filled in."""
    blocks: dict[str, dict[str, str]] = {"name": {}, "fragment": {}}
    for text in texts:
        parts = _BLOCK.split(text)[1:]
        for kind, block in zip(parts[::2], parts[1::2], strict=True):
            name, _, body = block.partition("\n")
            lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
            name = name.strip()
            if name in blocks[kind]:  # one name, one query: a second one would win silently
                raise ValueError(f"the {kind} {name!r} is defined twice in the job API's SQL")
            blocks[kind][name] = "\n".join(lines).strip().rstrip(";")
    queries: dict[str, LiteralString] = {}
    for name, query in blocks["name"].items():
        for fragment, body in blocks["fragment"].items():
            query = query.replace("{" + fragment + "}", body)
        if "{" in re.sub(r"'[^']*'", "", query):
            raise ValueError(f"query {name!r} names a fragment that no file defines")
        queries[name] = cast(LiteralString, query)
    return queries


QUERIES = load_queries([entry.read_text() for entry in sorted(
    files(__package__).iterdir(), key=lambda e: e.name) if entry.name.endswith(".sql")])
