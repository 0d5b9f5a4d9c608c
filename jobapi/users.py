"""User accounts: password hashing and the generated admin of the local stack."""

from __future__ import annotations

import bcrypt
import psycopg

from jobapi.errors import CrawlgraphError

BCRYPT_COST = 12
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (or refuses) anything longer


class PasswordTooLong(CrawlgraphError):
    """bcrypt cannot hash more than 72 bytes."""

    status_code = 400


def hash_password(password: str) -> str:
    """Hash a password with bcrypt at cost 12."""
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong(
            f"The password is {len(raw)} bytes long; at most {MAX_PASSWORD_BYTES} are allowed.",
            hint="Use a shorter password (a passphrase of up to 72 bytes).",
        )
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=BCRYPT_COST)).decode()


def check_password(password: str, password_hash: str) -> bool:
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        return False
    return bcrypt.checkpw(raw, password_hash.encode())


_UPSERT_ADMIN = """
INSERT INTO users (username, password_hash, role)
VALUES (%s, %s, 'admin')
ON CONFLICT (username) DO NOTHING
"""


def ensure_admin(conninfo: str, username: str, password: str) -> bool:
    """Create the admin account once; return True when it was created."""
    with psycopg.connect(conninfo) as conn:
        exists = conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone()
        if exists:
            return False
        cur = conn.execute(_UPSERT_ADMIN, (username, hash_password(password)))
        return cur.rowcount == 1
