"""`crawlgraph webhook add | list | deliveries | rm | deliver` against a real API and PostgreSQL.

The API runs in a uvicorn subprocess and the CLI as subprocesses, as in
tests/test_cli_jobs.py (whose `api_env` fixture this file uses); the sender is
a real `crawlgraph webhook deliver` process posting to a loopback receiver.
"""

from __future__ import annotations

import re
import subprocess

import psycopg

from tests.faults.helpers import REPO, wait_for
from tests.test_api_jobs import insert_job
from tests.test_cli_jobs import CLI, api_env, cli  # noqa: F401 (api_env is a fixture)
from tests.test_webhook_delivery import Receiver, documented_verify

ADDED = re.compile(r"webhook ([0-9a-f-]{36}) added")
SECRET = re.compile(r"secret  (whsec_\S+)")


def test_add_list_deliver_deliveries_rm(api_env, database_url, tmp_path):  # noqa: F811
    receiver = Receiver()
    sender = None
    try:
        added = cli(api_env, "webhook", "add", receiver.url(), "--event", "job.finished")
        assert added.returncode == 0, added.stderr
        hook_id, secret = ADDED.search(added.stdout).group(1), SECRET.search(added.stdout).group(1)
        listed = cli(api_env, "webhook", "list")
        assert listed.returncode == 0 and hook_id in listed.stdout
        assert "job.finished" in listed.stdout and secret not in listed.stdout

        with psycopg.connect(database_url) as conn:
            (owner,) = conn.execute("SELECT owner_id FROM webhooks WHERE id = %s",
                                    (hook_id,)).fetchone()
        job = insert_job(database_url, owner)
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE jobs SET status = 'finished' WHERE id = %s", (job,))
        with (tmp_path / "sender.log").open("w") as log:  # the child keeps its own copy
            sender = subprocess.Popen([*CLI, "webhook", "deliver", "--poll", "0.2"],
                                      env=api_env, cwd=REPO, stdout=log, stderr=log)
        wait_for(lambda: receiver.received, 30, "the sender to deliver the event")
        headers, body = receiver.received[0]
        assert documented_verify()(secret, headers["Crawlgraph-Signature"], body)

        shown = wait_for(lambda: (r := cli(api_env, "webhook", "deliveries", hook_id)).returncode
                         == 0 and "delivered" in r.stdout and r, 30, "the delivery to be shown")
        lines = shown.stdout.splitlines()
        assert lines[0].split() == ["ID", "EVENT", "STATE", "TRIES", "LAST", "ANSWER", "CREATED"]
        assert lines[1].split()[1:5] == ["job.finished", "delivered", "1", "200"]
    finally:
        if sender is not None:
            sender.terminate()
            sender.wait(timeout=15)
        receiver.close()
    removed = cli(api_env, "webhook", "rm", hook_id)
    assert removed.returncode == 0
    gone = cli(api_env, "webhook", "deliveries", hook_id)
    assert gone.returncode == 2 and "There is no webhook" in gone.stderr
    bad = cli(api_env, "webhook", "add", "ftp://example.org/hook")
    assert bad.returncode == 2 and "is not an http(s) URL" in bad.stderr
