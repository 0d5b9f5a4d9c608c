"""User accounts: password hashing, the generated admin of the local stack, and the
async queries the API's user routes use."""

from __future__ import annotations

import anyio.to_thread
import bcrypt
import psycopg
from psycopg_pool import AsyncConnectionPool

from jobapi.errors import BadRequest, Conflict, NotFound, Unauthorized
from jobapi.schemas import User, UserCreate, UserUpdate
from jobapi.sql import QUERIES

BCRYPT_COST = 12
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (or refuses) anything longer


class PasswordTooLong(BadRequest):
    """bcrypt cannot hash more than 72 bytes."""

    code = "password_too_long"


def check_length(password: str) -> bytes:
    """The encoded password; PasswordTooLong (a 400) past bcrypt's 72 bytes."""
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong(
            f"The password is {len(raw)} bytes long; at most {MAX_PASSWORD_BYTES} are allowed.",
            hint="Use a shorter password (a passphrase of up to 72 bytes).",
            field="password",
        )
    return raw


def hash_password(password: str) -> str:
    """Hash a password with bcrypt at cost 12."""
    raw = check_length(password)
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


# --- async queries for the API -------------------------------------------------

_SELECT_LOGIN = QUERIES["user_for_login"]
_INSERT_USER = QUERIES["insert_user"]
_LIST_USERS = QUERIES["list_users"]
_GET_USER = QUERIES["user_by_id"]
_UPDATE_USER = QUERIES["update_user"]

# A hash to compare against when the username is unknown, so that a login
# takes as long for a missing user as for a wrong password.
_DUMMY_HASH = "$2b$12$fSW1DaLk9AFNZpLRPLf6muztfQR0mBbp9jnpqWPG54vTyH4XUONyK"


def _user(row: tuple) -> User:
    return User(id=row[0], username=row[1], role=row[2], disabled=row[3], created_at=row[4],
                updated_at=row[5])


async def authenticate(pool: AsyncConnectionPool, username: str, password: str) -> tuple[int, str]:
    """(id, username) of an enabled user whose password matches; Unauthorized otherwise."""
    raw = check_length(password)
    async with pool.connection() as conn:
        row = await (await conn.execute(_SELECT_LOGIN, (username,))).fetchone()
    stored = row[2] if row is not None else _DUMMY_HASH
    ok = await anyio.to_thread.run_sync(_checkpw, raw, stored)
    if row is None or not ok or row[3]:
        raise Unauthorized(
            "Wrong username or password, or the account is disabled.",
            hint="Check the credentials; the local stack's admin login is in credentials.json.",
        )
    return row[0], row[1]


def _checkpw(raw: bytes, stored: str) -> bool:
    try:
        return bcrypt.checkpw(raw, stored.encode())
    except ValueError:  # a malformed stored hash
        return False


async def create_user(pool: AsyncConnectionPool, body: UserCreate) -> User:
    password_hash = await anyio.to_thread.run_sync(hash_password, body.password)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(_INSERT_USER, (body.username, password_hash, body.role))
        ).fetchone()
    if row is None:
        raise Conflict(f"The username {body.username!r} is taken.", field="username",
                       hint="Choose another username.")
    return _user(row)


async def list_users(pool: AsyncConnectionPool) -> list[User]:
    async with pool.connection() as conn:
        rows = await (await conn.execute(_LIST_USERS)).fetchall()
    return [_user(row) for row in rows]


async def update_user(pool: AsyncConnectionPool, user_id: int, body: UserUpdate) -> User:
    password_hash = None
    if body.password is not None:
        password_hash = await anyio.to_thread.run_sync(hash_password, body.password)
    params = {"id": user_id, "password_hash": password_hash, "role": body.role,
              "disabled": body.disabled}
    async with pool.connection() as conn:
        row = await (await conn.execute(_UPDATE_USER, params)).fetchone()
    if row is None:
        raise NotFound(f"There is no user {user_id}.", hint="GET /api/v1/users lists them.")
    return _user(row)


async def get_user(pool: AsyncConnectionPool, user_id: int) -> User:
    async with pool.connection() as conn:
        row = await (await conn.execute(_GET_USER, (user_id,))).fetchone()
    if row is None:
        raise NotFound(f"There is no user {user_id}.", hint="GET /api/v1/users lists them.")
    return _user(row)
