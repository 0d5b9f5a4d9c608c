"""`GET /api/v1/jobs/{id}/log`: the tail of each crawler process's log, from its scrapyd node."""

from __future__ import annotations

import msgspec
import pytest

from tests.api_fixtures import login, make_client
from tests.test_api_scrapyd import wait_for

pytest_plugins = ["tests.api_fixtures"]


@pytest.fixture
def crawl_settings(api_settings):
    return msgspec.structs.replace(api_settings, allow_private_networks=True)


def test_the_log_tail_is_the_end_of_the_file_scrapyd_wrote(crawl_settings, database_url,
                                                           redis_url, users, mock_server,
                                                           stack_settings):
    site = mock_server(pages=3)
    overrides = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url}
    with make_client(crawl_settings, crawler_overrides=overrides) as client:
        alice = login(client, "alice")
        created = client.post("/api/v1/jobs", json={"start_urls": [site.start_url]},
                              headers=alice)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        url = f"/api/v1/jobs/{job_id}"
        wait_for(lambda: client.get(url, headers=alice).json()["status"]
                 in ("finished", "failed"), 120, "the job to finish")
        # The log's last lines are written as the process exits: wait until it is whole.
        written = stack_settings.home / "scrapyd" / "logs" / "crawlgraph" / "site" / \
            f"{job_id}-0.log"
        wait_for(lambda: written.exists() and b"Spider closed" in written.read_bytes(), 60,
                 "the crawler's log to be complete")
        on_disk = written.read_bytes()

        whole = client.get(url + "/log", params={"max_bytes": 262_144}, headers=alice)
        assert whole.status_code == 200, whole.text
        (process,) = whole.json()["processes"]
        assert (process["node"], process["jobid"]) == (0, f"{job_id}-0")
        assert process["text"] == on_disk.decode() and process["truncated"] is False

        tail = client.get(url + "/log", params={"max_bytes": 300}, headers=alice).json()
        (cut,) = tail["processes"]
        assert cut["truncated"] is True and 0 < len(cut["text"].encode()) <= 300
        # Cut at a line start: the tail is whole lines of the file's end.
        assert on_disk.endswith(cut["text"].encode())
        assert on_disk[:-len(cut["text"].encode())].endswith(b"\n")

        assert client.get(url + "/log", params={"max_bytes": 0},
                          headers=alice).status_code == 422
        bob = login(client, "bob")
        assert client.get(url + "/log", headers=bob).status_code == 404
