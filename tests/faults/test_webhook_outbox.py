"""Scenario 24: a webhook sender killed with `kill -9` in the middle of a call loses no event.

A job of the user ends; the trigger puts its event in the outbox. A real
`crawlgraph webhook deliver` process takes it and calls a receiver that holds
the request unanswered; the sender is killed with `kill -9` while it waits.
The outbox row must still be pending with no attempt counted (the sender held
it in a transaction that died with it). The receiver then answers 200 and a
new sender process sends the event: the row is `delivered` after one logged
attempt, and the receiver has the same event (same `id`) with a valid
signature, checked with docs/api.md's `verify`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import msgspec
import psycopg
import pytest

from tests.api_fixtures import login, make_client
from tests.faults.helpers import REPO, wait_for
from tests.test_api_jobs import insert_job
from tests.test_webhook_delivery import Receiver, documented_verify

pytest_plugins = ["tests.api_fixtures"]


def _sender(env: dict[str, str], log_path) -> subprocess.Popen:
    with log_path.open("a") as log:  # the child keeps its own copy
        return subprocess.Popen([sys.executable, "-m", "cli", "webhook", "deliver", "--poll",
                                 "0.2", "--retry-base", "0.5"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def _delivery(database_url: str, job_id: uuid.UUID) -> tuple:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT d.state, d.attempts, d.event_id, (SELECT count(*) FROM webhook_attempts a "
            "WHERE a.delivery_id = d.id) FROM webhook_deliveries d "
            "WHERE d.data->>'job_id' = %s", (str(job_id),)).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.scenario(24, done="a job ends; `crawlgraph webhook deliver` calls a receiver that "
                               "holds the request; kill -9 the sender mid-call; the receiver "
                               "answers 200 again; a new sender starts",
                      checked="the outbox row survives the kill (pending, no attempt counted) "
                              "and is delivered once after the restart: one attempt logged, "
                              "the same event id, a signature docs/api.md's verify accepts")
def test_a_killed_sender_loses_no_event(api_settings, users, database_url, tmp_path):
    verify = documented_verify()
    receiver = Receiver()
    receiver.hold.set()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CRAWLGRAPH_", "DATABASE_URL", "REDIS_URL", "SCRAPYD_URLS"))}
    env.update(CRAWLGRAPH_HOME=str(tmp_path), DATABASE_URL=database_url,
               ALLOW_PRIVATE_NETWORKS="1")
    log_path = tmp_path / "sender.log"
    started: list[subprocess.Popen] = []
    try:
        settings = msgspec.structs.replace(api_settings, allow_private_networks=True)
        with make_client(settings) as client:
            alice = login(client, "alice")
            made = client.post("/api/v1/webhooks", json={"url": receiver.url()}, headers=alice)
            assert made.status_code == 201, made.text
            secret = made.json()["secret"]
        job = insert_job(database_url, users["alice"], status="running")
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (job,))

        first = _sender(env, log_path)
        started.append(first)
        wait_for(lambda: receiver.received, 60, "the sender's call to reach the receiver")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        state, attempts, event_id, logged = _delivery(database_url, job)
        assert (state, attempts, logged) == ("pending", 0, 0), \
            "the event was lost or counted with the sender that died"

        receiver.hold.clear()
        started.append(_sender(env, log_path))
        wait_for(lambda: _delivery(database_url, job)[0] == "delivered", 60,
                 "the restarted sender to deliver the event")
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
        receiver.close()
    state, attempts, event_id_after, logged = _delivery(database_url, job)
    assert (state, attempts, logged, event_id_after) == ("delivered", 1, 1, event_id)
    # The killed call and the one that was answered: the same event, both signed.
    assert len(receiver.received) == 2, log_path.read_text()[-2000:]
    for headers, body in receiver.received:
        assert json.loads(body)["id"] == str(event_id)
        assert json.loads(body)["data"]["job_id"] == str(job)
        assert verify(secret, headers["Crawlgraph-Signature"], body)
