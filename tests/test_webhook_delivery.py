"""Webhook deliveries against real PostgreSQL, the real API and a loopback receiver.

Jobs end and graph builds finish through the API and the graph worker; the
trigger of migration 0015 puts the events in the outbox, and `deliver_one`
(the sender's step) posts them to a receiver in this process. Signatures are
checked with the `verify` function of docs/api.md, run from the docs as
written. `Receiver` is also used by tests/faults/test_webhook_outbox.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import certifi
import msgspec
import psycopg
import pytest
import trustme
from psycopg_pool import AsyncConnectionPool

from graphs.worker import Worker, WorkerConfig
from jobapi.services.loops import configure_connection
from jobapi.services.webhooks_send import deliver_one, post, retry_delay
from tests.api_fixtures import login, make_client
from tests.conftest import free_port
from tests.graphdata import add_links, add_pages, make_job
from tests.test_api_jobs import insert_job

pytest_plugins = ["tests.api_fixtures"]

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def documented_verify() -> Any:
    """The `verify` function of docs/api.md's webhooks section, as written there."""
    section = DOCS.read_text().split("## Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace["verify"]


class Receiver:
    """A loopback HTTP server that logs each POST and answers the next status of `statuses`
    (the last one repeats); while `hold` is set it answers nothing."""

    def __init__(self, statuses: tuple[int, ...] = (200,), port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.hold = threading.Event()
        self.location: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((dict(self.headers), body))
                deadline = time.monotonic() + 60
                while receiver.hold.is_set() and time.monotonic() < deadline:
                    time.sleep(0.05)
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 \
                    else receiver.statuses[0]
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    if receiver.location:
                        self.send_header("Location", receiver.location)
                    self.end_headers()
                    self.wfile.write(f"answer {status} ".encode() * 200)
                except OSError:  # the sender is gone (killed mid-call in scenario 24)
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.hold.clear()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def _drain(database_url: str, *, allow_private: bool, retry_base: float = 30.0,
                 until: float = 0.0) -> int:
    """Send due deliveries until none is due (and, with `until`, none pending for that long)."""
    sent = 0
    deadline = time.monotonic() + until
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False,
                                   configure=configure_connection,
                                   kwargs={"autocommit": True}) as pool:
        while True:
            if await deliver_one(pool, allow_private_networks=allow_private,
                                 retry_base=retry_base):
                sent += 1
                continue
            if time.monotonic() >= deadline or not _pending(database_url):
                return sent
            await asyncio.sleep(0.05)


def drain(database_url: str, **kwargs: Any) -> int:
    return asyncio.run(_drain(database_url, **kwargs))


def _pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM webhook_deliveries "
                            "WHERE state = 'pending'").fetchone()[0]


def _hook(client, headers, url: str, **fields: Any) -> dict:
    response = client.post("/api/v1/webhooks", json={"url": url, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _deliveries(client, headers, hook_id: str) -> list[dict]:
    response = client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_cancelled_job_and_a_done_build_each_deliver_once_signed(
        api_settings, users, database_url, receiver):
    verify = documented_verify()
    settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
    with make_client(settings) as client:
        alice = login(client, "alice")
        hook = _hook(client, alice, receiver.url())
        running = insert_job(database_url, users["alice"], status="running")
        cancelled = client.post(f"/api/v1/jobs/{running}/cancel", headers=alice)
        assert cancelled.status_code == 200, cancelled.text
        with psycopg.connect(database_url, autocommit=True) as conn:
            crawled = make_job(conn, users["alice"])
            add_pages(conn, crawled, ["http://a.test/", "http://a.test/b"])
            add_links(conn, crawled, [("http://a.test/", "http://a.test/b", 1, False)])
        build = client.post(f"/api/v1/jobs/{crawled}/graphs", json={"level": "page"},
                            headers=alice)
        assert build.status_code == 202, build.text
        Worker(settings.database_url, settings.home,
               WorkerConfig(poll_seconds=0.1)).run(once=True)

        assert drain(database_url, allow_private=True) == 2
        assert drain(database_url, allow_private=True) == 0  # nothing sent twice
        events = {e["type"]: e for e in receiver.events()}
        assert set(events) == {"job.cancelled", "graph.done"}, receiver.events()
        assert events["job.cancelled"]["data"]["job_id"] == str(running)
        assert events["graph.done"]["data"]["build_id"] == build.json()["id"]
        assert events["graph.done"]["data"]["node_count"] == 2
        for headers, body in receiver.received:
            signature = headers["Crawlgraph-Signature"]
            assert verify(hook["secret"], signature, body)
            assert not verify(hook["secret"], signature, body + b" ")  # the body is signed
            assert not verify("whsec_" + "x" * 43, signature, body)  # with this secret
            assert headers["Crawlgraph-Delivery"] == json.loads(body)["id"]

        shown = _deliveries(client, alice, hook["id"])
        assert sorted(d["event"] for d in shown) == ["graph.done", "job.cancelled"]
        for delivery in shown:
            assert delivery["state"] == "delivered" and delivery["attempts"] == 1
            (attempt,) = delivery["log"]
            assert attempt["status"] == 200 and attempt["error"] is None
            assert attempt["body"].startswith("answer 200") and len(attempt["body"]) == 1000


def test_a_receiver_answering_500_then_200_is_retried_with_backoff(
        api_settings, users, database_url):
    receiver = Receiver(statuses=(500, 200))
    try:
        settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
        with make_client(settings) as client:
            alice = login(client, "alice")
            hook = _hook(client, alice, receiver.url(), events=["job.finished"])
            job = insert_job(database_url, users["alice"], status="running")
            with psycopg.connect(database_url) as conn:
                conn.execute("UPDATE jobs SET status = 'failed' WHERE id = %s", (job,))
                conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (job,))
            started = time.monotonic()
            assert drain(database_url, allow_private=True, retry_base=0.4, until=10) == 2
            elapsed = time.monotonic() - started
            (delivery,) = _deliveries(client, alice, hook["id"])  # job.failed is not asked for
    finally:
        receiver.close()
    assert delivery["event"] == "job.finished" and delivery["state"] == "delivered"
    assert [a["status"] for a in delivery["log"]] == [500, 200]
    assert delivery["log"][0]["body"].startswith("answer 500")
    first, second = (datetime.fromisoformat(a["attempted_at"]) for a in delivery["log"])
    assert (second - first).total_seconds() >= 0.2 and elapsed >= 0.2  # 0.4 s * [0.5, 1)
    ids = {json.loads(body)["id"] for _, body in receiver.received}
    assert len(receiver.received) == 2 and len(ids) == 1  # the same event, sent again


def test_retry_delays_double_up_to_the_cap_with_jitter():
    for attempt in range(1, 20):
        full = min(30.0 * 2 ** (attempt - 1), 3600.0)
        delays = [retry_delay(attempt) for _ in range(50)]
        assert all(full * 0.5 <= d < full for d in delays), (attempt, delays[:3])
    # A day of retries is about 30 tries, not thousands.
    assert sum(min(30.0 * 2 ** (n - 1), 3600.0) for n in range(1, 31)) > 86_400 * 0.5


def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(
        api_settings, users, database_url, receiver):
    settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
    with make_client(settings) as client:  # allowed when it was made ...
        alice = login(client, "alice")
        hook = _hook(client, alice, receiver.url("localhost"))
        job = insert_job(database_url, users["alice"], status="running")
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (job,))
        assert drain(database_url, allow_private=False) == 1  # ... not when it is sent
        (delivery,) = _deliveries(client, alice, hook["id"])
    assert receiver.received == []
    assert delivery["state"] == "pending" and delivery["attempts"] == 1
    (attempt,) = delivery["log"]
    assert attempt["status"] is None
    assert "localhost resolves to" in attempt["error"] and "loopback" in attempt["error"]
    assert "ALLOW_PRIVATE_NETWORKS=1" in attempt["error"]


def test_a_receiver_down_for_a_while_gets_every_event_once_it_is_back(
        api_settings, users, database_url):
    port = free_port()  # nothing listens there yet
    settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
    with make_client(settings) as client:
        alice = login(client, "alice")
        hook = _hook(client, alice, f"http://127.0.0.1:{port}/hook")
        jobs = [insert_job(database_url, users["alice"], status="running") for _ in range(3)]
        with psycopg.connect(database_url) as conn:
            for job, status in zip(jobs, ("finished", "failed", "cancelled"), strict=True):
                conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status, job))
        # Each tried at least once (a slow pass may already retry one of them).
        assert drain(database_url, allow_private=True, retry_base=0.3) >= 3
        down = _deliveries(client, alice, hook["id"])
        assert [d["state"] for d in down] == ["pending"] * 3
        assert all(a["status"] is None and "ConnectError" in a["error"]
                   for d in down for a in d["log"]), down
        receiver = Receiver(port=port)
        try:
            drain(database_url, allow_private=True, retry_base=0.3, until=10)
        finally:
            receiver.close()
        back = _deliveries(client, alice, hook["id"])
    assert [d["state"] for d in back] == ["delivered"] * 3
    assert sorted(e["data"]["job_id"] for e in receiver.events()) == sorted(map(str, jobs))
    assert len(receiver.received) == 3  # each once
    for delivery in back:
        assert delivery["log"][0]["status"] is None and delivery["log"][-1]["status"] == 200


def test_a_delivery_is_given_up_a_day_after_its_event(api_settings, users, database_url):
    receiver = Receiver(statuses=(503,))
    try:
        settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
        with make_client(settings) as client:
            alice = login(client, "alice")
            hook = _hook(client, alice, receiver.url())
            young, old = (insert_job(database_url, users["alice"], status="running")
                          for _ in range(2))
            with psycopg.connect(database_url) as conn:
                for job in (young, old):
                    conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (job,))
                conn.execute("UPDATE webhook_deliveries SET created_at = now() - "
                             "interval '24 hours 1 minute' WHERE data->>'job_id' = %s",
                             (str(old),))
            assert drain(database_url, allow_private=True) == 2
            shown = _deliveries(client, alice, hook["id"])
    finally:
        receiver.close()
    states = sorted((d["state"], d["attempts"], d["log"][0]["status"]) for d in shown)
    assert states == [("failed", 1, 503), ("pending", 1, 503)]
    failed = next(d for d in shown if d["state"] == "failed")
    pending = next(d for d in shown if d["state"] == "pending")
    assert failed["finished_at"] is not None and pending["finished_at"] is None
    assert datetime.fromisoformat(pending["next_attempt_at"]) > \
        datetime.fromisoformat(pending["log"][0]["attempted_at"])


def test_a_redirect_is_not_followed(api_settings, users, database_url, receiver):
    moved = Receiver(statuses=(302,))
    moved.location = receiver.url()
    try:
        settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
        with make_client(settings) as client:
            alice = login(client, "alice")
            hook = _hook(client, alice, moved.url())
            job = insert_job(database_url, users["alice"], status="running")
            with psycopg.connect(database_url) as conn:
                conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (job,))
            assert drain(database_url, allow_private=True) == 1
            (delivery,) = _deliveries(client, alice, hook["id"])
    finally:
        moved.close()
    assert len(moved.received) == 1 and receiver.received == []
    assert delivery["state"] == "pending" and delivery["log"][0]["status"] == 302


def test_https_at_the_checked_address_is_verified_for_the_urls_host(monkeypatch, tmp_path):
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setattr(certifi, "where", lambda: str(bundle))  # httpx trusts the test CA
    for name, good in (("localhost", True), ("other.test", False)):
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(tls)
        receiver = Receiver(tls=tls)
        try:
            url = receiver.url("localhost").replace("http://", "https://")
            answer = asyncio.run(post(url, b"{}", {"Content-Type": "application/json"},
                                      allow_private_networks=True))
        finally:
            receiver.close()
        if good:  # connected to 127.0.0.1, the certificate checked for localhost
            assert answer.status == 200, answer
            (headers, _), = receiver.received
            assert headers["Host"] == f"localhost:{receiver.server.server_address[1]}"
        else:
            assert answer.status is None and "CERTIFICATE_VERIFY_FAILED" in answer.error, answer
            assert receiver.received == []


def test_an_address_that_refuses_the_connection_is_passed_for_the_next(monkeypatch, receiver):
    import ipaddress

    from jobapi.services import webhooks_send

    async def two(host: str, port: int) -> list:  # as a name with two addresses resolves
        return [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(webhooks_send, "_addresses", two)
    answer = asyncio.run(post(receiver.url("hooks.test"), b"{}", {},
                              allow_private_networks=True))
    assert answer.status == 200, answer  # 127.0.0.2 refused it; 127.0.0.1 is the receiver
    (headers, _), = receiver.received
    assert headers["Host"].startswith("hooks.test:")
