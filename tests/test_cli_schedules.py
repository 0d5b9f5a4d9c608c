"""`crawlgraph schedule add | list | show | pause | resume | rm` against a real API.

The API runs in a uvicorn subprocess and the CLI as a subprocess, as in
tests/test_cli_jobs.py (whose `api_env` fixture this file uses).
"""

from __future__ import annotations

import json
import re

from tests.test_cli_jobs import api_env, cli  # noqa: F401 (api_env is a fixture)

ID = re.compile(r"schedule ([0-9a-f-]{36}) added")


def test_add_list_show_pause_resume_rm(api_env):  # noqa: F811
    added = cli(api_env, "schedule", "add", "nightly", "http://127.0.0.1:9/", "--cron",
                "0 3 * * *", "--tz", "Europe/Paris", "--max-pages", "10", "--tag", "n",
                "--keep-last", "3")
    assert added.returncode == 0, added.stderr
    schedule_id = ID.search(added.stdout).group(1)
    assert "0 3 * * * (Europe/Paris)" in added.stdout

    every = cli(api_env, "schedule", "add", "often", "http://127.0.0.1:9/", "--every", "600",
                "--overlap", "queue", "--catchup", "none", "--paused")
    assert every.returncode == 0, every.stderr
    listed = cli(api_env, "schedule", "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "WHEN", "ENABLED", "NEXT"]
    assert schedule_id in lines[2] and "nightly" in lines[2] and "yes" in lines[2]
    assert "every 600 s" in lines[1] and "paused" in lines[1]

    shown = cli(api_env, "schedule", "show", schedule_id)
    assert shown.returncode == 0
    assert shown.stdout.count("\nnext ") == 5 and "overlap  skip, catch-up latest" in shown.stdout
    assert "keeps    its 3 newest crawls" in shown.stdout
    as_json = json.loads(cli(api_env, "schedule", "show", schedule_id, "--json").stdout)
    assert as_json["job"]["max_pages"] == 10 and as_json["job"]["tags"] == ["n"]

    paused = cli(api_env, "schedule", "pause", schedule_id)
    assert paused.returncode == 0 and "paused, next -" in paused.stdout
    resumed = cli(api_env, "schedule", "resume", schedule_id)
    assert resumed.returncode == 0 and "enabled, next 20" in resumed.stdout
    removed = cli(api_env, "schedule", "rm", schedule_id)
    assert removed.returncode == 0
    gone = cli(api_env, "schedule", "show", schedule_id)
    assert gone.returncode == 2 and "There is no schedule" in gone.stderr


def test_a_bad_cron_expression_is_an_error_naming_the_field(api_env):  # noqa: F811
    bad = cli(api_env, "schedule", "add", "x", "http://127.0.0.1:9/", "--cron", "0 24 * * *")
    assert bad.returncode == 2
    assert "the hour field of '0 24 * * *' is not valid" in bad.stderr
    zone = cli(api_env, "schedule", "add", "x", "http://127.0.0.1:9/", "--cron", "0 3 * * *",
               "--tz", "Europe/Pariss")
    assert zone.returncode == 2 and "no time zone 'Europe/Pariss'" in zone.stderr
