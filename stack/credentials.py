"""The data directory's layout version and generated secrets."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from core.settings import CREDENTIALS_FILE
from stack.errors import StackError

LAYOUT_VERSION = "1"


def ensure_credentials(home: Path) -> dict[str, str]:
    """Create the data directory and its generated secrets (mode 0600) once."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    version_file = home / "VERSION"
    if version_file.exists():
        found = version_file.read_text().strip()
        if found != LAYOUT_VERSION:
            raise StackError(
                f"The data directory {home.name}/ was made by another crawlgraph version "
                f"(layout {found}, this one uses {LAYOUT_VERSION}).",
                hint="Point CRAWLGRAPH_HOME at a new directory, or remove this one "
                "(its crawl data goes with it).",
            )
    else:
        version_file.write_text(LAYOUT_VERSION + "\n")
    path = home / CREDENTIALS_FILE
    if path.exists():
        creds = json.loads(path.read_text())
    else:
        creds = {}
    wanted = {
        "postgres_password": lambda: secrets.token_urlsafe(24),
        "redis_password": lambda: secrets.token_urlsafe(24),
        "scrapyd_username": lambda: "crawlgraph",
        "scrapyd_password": lambda: secrets.token_urlsafe(24),
        "admin_username": lambda: "admin",
        "admin_password": lambda: secrets.token_urlsafe(18),
        "jwt_secret": lambda: secrets.token_hex(32),
    }
    changed = False
    for key, make in wanted.items():
        if not creds.get(key):
            creds[key] = make()
            changed = True
    if changed:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds, fh, indent=2)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return creds
