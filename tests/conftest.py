"""Session fixtures: a private PostgreSQL, Redis and scrapyd for the whole test run.

They are started by the same code as `crawlgraph up` (`stack`), on free
loopback ports, in a temporary data directory. Every test that asks for
`database_url` gets a fresh database cloned from a migrated template; every
test that asks for `redis_url` gets an empty Redis database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from core.settings import Settings
from stack import Stack

pytest_plugins = ["tests.verify_plugin"]

TEMPLATE_DB = "crawlgraph_template"
_db_counter = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_home() -> Path:
    # Not under pytest's 0700 tmp dir: as root, PostgreSQL runs as `postgres`
    # and must be able to reach its data directory.
    home = Path(tempfile.mkdtemp(prefix="crawlgraph-test-"))
    os.chmod(home, 0o755)
    return home


def stack_environ(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL",
                                                           "SCRAPYD_URLS"}}
    env.update(
        CRAWLGRAPH_HOME=str(home),
        CRAWLGRAPH_PG_PORT=str(free_port()),
        CRAWLGRAPH_REDIS_PORT=str(free_port()),
        CRAWLGRAPH_SCRAPYD_PORT=str(free_port()),
        CRAWLGRAPH_API_PORT=str(free_port()),
        ALLOW_PRIVATE_NETWORKS="1",
        # scrapyd's crawler processes find the test spiders (`follow`, tests/spiders).
        SCRAPY_SETTINGS_MODULE="tests.spiders.settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                 os.environ.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def test_stack() -> Iterator[Stack]:
    """PostgreSQL, Redis and scrapyd for the whole session (the API is per test)."""
    home = make_home()
    stack = Stack(stack_environ(home), only={"postgres", "redis", "scrapyd"})
    try:
        stack.up()
        with psycopg.connect(_with_db(stack.settings.database_url, "postgres"),
                             autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB} TEMPLATE crawlgraph")
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_settings(test_stack: Stack) -> Settings:
    return test_stack.settings


def _with_db(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture
def database_url(stack_settings: Settings) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"test_{os.getpid()}_{next(_db_counter)}"
    admin = _with_db(stack_settings.database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield _with_db(stack_settings.database_url, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def redis_url(stack_settings: Settings) -> Iterator[str]:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(stack_settings.redis_url)
    client.flushall()
    client.close()
    yield stack_settings.redis_url


@pytest.fixture(scope="session")
def scrapyd_url(stack_settings: Settings) -> str:
    return stack_settings.scrapyd_urls[0]


# --- mock web server (crawling tests: the site spider, middlewares, rendering) ---
# A factory: `server = mock_server(pages=100, tricky=True, robots="...")` starts a
# `tests.mockserver.MockServer` subprocess on a free loopback port; every server
# started through it is stopped at teardown. Several servers act as several hosts.
@pytest.fixture
def mock_server():
    from tests.mockserver import MockServer

    servers: list[MockServer] = []

    def start(**params) -> MockServer:
        server = MockServer(**params).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()



# A crawler made in a test with rendering on binds its render proxy's port; one that
# no middleware took (a test that builds only part of a crawler) gives it back here,
# not at the interpreter's exit.
@pytest.fixture(autouse=True)
def _unbind_untaken_render_proxies() -> Iterator[None]:
    from crawler import renderguard

    yield
    renderguard.unbind_untaken()
