"""Fixtures of the job API tests (imported by tests/test_api_*.py and test_cli_jobs.py).

The app runs in-process with Litestar's TestClient against the session's real
PostgreSQL (a fresh database per test), Redis and scrapyd.

PYTEST_DONT_REWRITE: the test modules import helpers from here before pytest
registers it as a plugin; plain asserts are fine for these few checks.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from core.settings import Settings
from jobapi.app import create_app
from jobapi.users import hash_password

JWT_SECRET = secrets.token_hex(32)
PASSWORDS: dict[str, str] = {}


def add_user(database_url: str, username: str, role: str = "user",
             password: str | None = None) -> int:
    password = password or secrets.token_urlsafe(12)
    PASSWORDS[username] = password
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO users (username, password_hash, role) VALUES (%s, %s, %s) RETURNING id",
            (username, hash_password(password), role),
        ).fetchone()
    return row[0]


@pytest.fixture
def api_settings(stack_settings: Settings, database_url: str, redis_url: str,
                 tmp_path: Path) -> Settings:
    """The session's services with this test's database, private networks refused."""
    return msgspec.structs.replace(
        stack_settings, database_url=database_url, redis_url=redis_url,
        allow_private_networks=False, jwt_secret=JWT_SECRET, home=tmp_path,
    )


@contextlib.contextmanager
def make_client(settings: Settings, **kwargs: Any) -> Iterator[TestClient]:
    app = create_app(settings, **kwargs)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with make_client(api_settings) as test_client:
        yield test_client


@pytest.fixture
def users(database_url: str) -> dict[str, int]:
    """An admin and two ordinary users: name -> id."""
    return {name: add_user(database_url, name, role)
            for name, role in (("root", "admin"), ("alice", "user"), ("bob", "user"))}


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token",
                           json={"username": username, "password": PASSWORDS[username]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_error(response: Any, status: int, code: str | None = None,
                 field: str | None = None) -> dict[str, Any]:
    """The answer has this status and the one error shape; return its `error`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    for leak in ("Traceback", "SELECT ", "INSERT ", JWT_SECRET, "password_hash"):
        assert leak not in response.text
    return error

