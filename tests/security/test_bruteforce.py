"""Scenario 15: login brute force is throttled per user and per address; X-Forwarded-For
cannot reset the count unless a trusted proxy is configured.

The API runs in a real uvicorn (a thread of the test process) so that the
client address is a real TCP peer: each "client" connects from its own
loopback source address (127.0.0.20, 127.0.0.21, ...).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import msgspec
import pytest
import redis
import uvicorn

from core.settings import Settings
from jobapi.app import create_app
from jobapi.ratelimit import Limit, RateLimits
from stack import Stack
from tests.api_fixtures import JWT_SECRET, PASSWORDS, assert_error
from tests.conftest import free_port, make_home, stack_environ

pytest_plugins = ["tests.api_fixtures"]

TOKEN = "/api/v1/auth/token"


@contextlib.contextmanager
def serve(settings: Settings, rate_limits: RateLimits | None = None) -> Iterator[str]:
    """The API in uvicorn on 127.0.0.1 (in a thread, with these limits); yields its base URL.

    uvicorn's own X-Forwarded-For handling is off: the app decides whom to believe
    (`CRAWLGRAPH_TRUSTED_PROXIES`). `test_the_stacks_api_...` checks that the stack's
    own uvicorn command gives the same behaviour.
    """
    port = free_port()
    config = uvicorn.Config(create_app(settings, rate_limits=rate_limits), host="127.0.0.1",
                            port=port, log_level="warning", access_log=False, ws="none",
                            lifespan="on", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def client_from(base: str, address: str) -> Iterator[httpx.Client]:
    """An HTTP client whose connections come from this loopback source address."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base, transport=transport, timeout=30) as client:
        yield client


def in_one_window(redis_url: str, seconds: int, check: Callable[[], None]) -> None:
    """Run `check` inside one rate-limit window.

    The limits count in fixed windows: a check that straddles a window's end
    sees its count split. Then the counters are cleared and the check runs once
    more, in the new window (which a check far shorter than the window cannot
    straddle again).
    """
    for _ in range(2):
        started = int(time.time() // seconds)
        try:
            check()
        except AssertionError:
            if int(time.time() // seconds) == started:
                raise
        else:
            if int(time.time() // seconds) == started:
                return
        client = redis.Redis.from_url(redis_url)
        try:
            for key in client.scan_iter("crawlgraph:ratelimit:*"):
                client.delete(key)
        finally:
            client.close()
    raise AssertionError("two rate-limit windows ended during the check")


def attempt(client: httpx.Client, username: str, password: str = "wrong-password",
            **headers: str) -> httpx.Response:
    return client.post(TOKEN, json={"username": username, "password": password},
                       headers=headers)


@pytest.mark.scenario(15, done="10 wrong passwords for one user, each from another address "
                               "(default limits), then the right one from a fresh address",
                      checked="the right password is 429 with Retry-After from every address "
                              "and in any letter case; another user still logs in")
def test_per_user_throttle_across_addresses(api_settings, users, redis_url):
    limit = RateLimits().login_per_username
    assert limit is not None and limit.count <= 10  # the default is on, and tight

    def check() -> None:
        with serve(api_settings) as base:
            for i in range(limit.count):
                with client_from(base, f"127.0.0.{20 + i}") as client:
                    name = ("alice", "ALICE", "Alice")[i % 3]
                    assert attempt(client, name).status_code == 401
            for address in ("127.0.0.60", "127.0.0.61"):
                with client_from(base, address) as client:
                    for name in ("alice", "aLiCe"):
                        limited = attempt(client, name, PASSWORDS["alice"])
                        assert_error(limited, 429, "rate_limited")
                        assert 1 <= int(limited.headers["retry-after"]) <= limit.seconds + 1
                    form = client.post(TOKEN, data={"username": "alice",
                                                    "password": PASSWORDS["alice"]})
                    assert_error(form, 429, "rate_limited")
                    assert attempt(client, "bob", PASSWORDS["bob"]).status_code == 200

    in_one_window(redis_url, limit.seconds, check)


@pytest.mark.scenario(15, done="from one address, wrong passwords for many usernames",
                      checked="past the per-address limit every login from it is 429, even "
                              "right ones; another address logs in")
def test_per_address_throttle_across_users(api_settings, users, redis_url):
    assert RateLimits().login_per_address is not None  # on by default
    limits = RateLimits(login_per_username=Limit(10, 300), login_per_address=Limit(6, 300))

    def check() -> None:
        with serve(api_settings, limits) as base:
            with client_from(base, "127.0.0.30") as client:
                for i in range(6):
                    assert attempt(client, f"guess{i}").status_code == 401
                assert_error(attempt(client, "alice", PASSWORDS["alice"]), 429, "rate_limited")
                assert_error(attempt(client, "bob", PASSWORDS["bob"]), 429, "rate_limited")
            with client_from(base, "127.0.0.31") as client:
                assert attempt(client, "alice", PASSWORDS["alice"]).status_code == 200

    in_one_window(redis_url, 300, check)


FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Client-IP",
                      "True-Client-IP", "CF-Connecting-IP")


@contextlib.contextmanager
def stack_api(database_url: str, redis_url: str, scrapyd_url: str) -> Iterator[str]:
    """The API started by the local stack's own command (`crawlgraph up`), default limits."""
    home = make_home()
    env = stack_environ(home, DATABASE_URL=database_url, REDIS_URL=redis_url,
                        SCRAPYD_URLS=scrapyd_url, CRAWLGRAPH_JWT_SECRET=JWT_SECRET,
                        CRAWLGRAPH_GRAPH_WORKERS="0", CRAWLGRAPH_TRUSTED_PROXIES="")
    stack = Stack(env, only={"api"})
    try:
        stack.up()
        yield stack.settings.api_url
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.scenario(15, done="API started by the stack, no trusted proxy: every attempt from "
                               "one address names another user and carries a new "
                               "X-Forwarded-For (and X-Real-IP, Forwarded, ...)",
                      checked="the headers are ignored: past the default per-address limit "
                              "every login from the address is 429, even a right one")
def test_forwarded_headers_do_not_reset_the_count_without_a_trusted_proxy(
        database_url, redis_url, scrapyd_url, users):
    limit = RateLimits().login_per_address
    assert limit is not None

    def check() -> None:
        with stack_api(database_url, redis_url, scrapyd_url) as base, \
                client_from(base, "127.0.0.1") as client:
            for i in range(limit.count):
                spoof = f"203.0.113.{i + 1}"
                headers = {name: spoof for name in FORWARDING_HEADERS}
                headers["Forwarded"] = f"for={spoof}"
                assert attempt(client, f"guess{i}", **headers).status_code == 401
            for i in range(3):
                spoof = f"198.51.100.{i + 1}"
                limited = attempt(client, "alice", PASSWORDS["alice"], **{"X-Forwarded-For": spoof})
                assert_error(limited, 429, "rate_limited")

    in_one_window(redis_url, limit.seconds, check)


@pytest.mark.scenario(15, done="trusted proxy 127.0.0.1 configured: clients behind it, a client "
                               "spoofing X-Forwarded-For through it, and an untrusted peer "
                               "sending the header",
                      checked="clients behind the proxy are counted apart; the spoofed left part "
                              "and the untrusted peer's header do not reset the count")
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(api_settings, users, redis_url):
    limits = RateLimits(login_per_username=None, login_per_address=Limit(4, 300))
    proxied = msgspec.structs.replace(api_settings, trusted_proxies=("127.0.0.1/32",))

    def check() -> None:
        with serve(proxied, limits) as base:
            with client_from(base, "127.0.0.1") as proxy:
                # The proxy forwards one client's attempts: that client is throttled ...
                for _ in range(4):
                    assert attempt(proxy, "alice", **{"X-Forwarded-For": "203.0.113.9"}
                                   ).status_code == 401
                assert_error(attempt(proxy, "alice", PASSWORDS["alice"],
                                     **{"X-Forwarded-For": "203.0.113.9"}), 429)
                # ... even when it puts a fresh address in front (the proxy appends the real one).
                for i in range(3):
                    spoofed = f"10.9.9.{i}, 203.0.113.9"
                    assert_error(attempt(proxy, "alice", PASSWORDS["alice"],
                                         **{"X-Forwarded-For": spoofed}), 429)
                # Another client behind the same proxy is counted apart.
                assert attempt(proxy, "alice", PASSWORDS["alice"],
                               **{"X-Forwarded-For": "203.0.113.10"}).status_code == 200
            with client_from(base, "127.0.0.40") as untrusted:
                for i in range(4):
                    assert attempt(untrusted, "alice", **{"X-Forwarded-For": f"192.0.2.{i}"}
                                   ).status_code == 401
                assert_error(attempt(untrusted, "alice", PASSWORDS["alice"],
                                     **{"X-Forwarded-For": "192.0.2.200"}), 429)


    in_one_window(redis_url, 300, check)
