"""Scenario 14: scrapyd and Redis listen on loopback only and ask for credentials."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import psutil
import pytest
import redis

SCRAPYD_ENDPOINTS = [
    "daemonstatus.json", "listprojects.json", "listversions.json?project=crawlgraph",
    "listspiders.json?project=crawlgraph", "listjobs.json", "schedule.json", "cancel.json",
    "addversion.json", "delproject.json", "delversion.json", "status.json?job=x", "",
    "jobs", "logs/",
]


def _listening_addresses(port: int) -> set[str]:
    return {
        conn.laddr.ip
        for conn in psutil.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
    }


@pytest.mark.scenario(14, done="list the sockets scrapyd and Redis listen on",
                      checked="every listening address is loopback")
def test_scrapyd_and_redis_listen_on_loopback_only(stack_settings):
    for port in (stack_settings.scrapyd_port, stack_settings.redis_port,
                 stack_settings.pg_port):
        addresses = _listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert addresses <= {"127.0.0.1", "::1"}, (port, addresses)


@pytest.mark.scenario(14, done="call every scrapyd endpoint without credentials",
                      checked="each answers 401; with credentials daemonstatus answers ok")
def test_scrapyd_asks_for_credentials_on_every_endpoint(scrapyd_url):
    url = urlsplit(scrapyd_url)
    base = f"http://{url.hostname}:{url.port}"
    with httpx.Client(timeout=5) as client:
        for endpoint in SCRAPYD_ENDPOINTS:
            for method in ("GET", "POST"):
                response = client.request(method, f"{base}/{endpoint}")
                assert response.status_code == 401, (method, endpoint, response.status_code)
            wrong = client.get(f"{base}/{endpoint}", auth=("crawlgraph", "wrong-password"))
            assert wrong.status_code == 401, endpoint
        good = client.get(f"{base}/daemonstatus.json", auth=(url.username, url.password))
        assert good.json()["status"] == "ok"


@pytest.mark.scenario(14, done="connect to Redis without its password",
                      checked="every command is refused with an authentication error")
def test_redis_refuses_clients_without_the_password(stack_settings):
    url = urlsplit(stack_settings.redis_url)
    client = redis.Redis(host=url.hostname, port=url.port, socket_timeout=5)
    try:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        with pytest.raises(redis.AuthenticationError):
            client.keys("*")
    finally:
        client.close()
