"""`/api/v1/jobs/{id}/warcs`: the job's WARC files listed from PostgreSQL, served from disk."""

from __future__ import annotations

import socket
from io import BytesIO

import psycopg
from warcio.archiveiterator import ArchiveIterator

from crawler.warcfiles import WarcFiles
from tests.api_fixtures import assert_error, login
from tests.test_api_jobs import insert_job

pytest_plugins = ["tests.api_fixtures"]


def write_warc(directory, job_id, rows: list) -> str:
    """A real closed WARC file of one record; its row is recorded as the writer reports it."""
    files = WarcFiles(directory, str(job_id), "w1", max_bytes=10**9,
                      on_file=lambda *row: rows.append(row), info={"software": "test"})
    builder = files.record_writer()
    files.write([builder.create_warc_record("http://a.test/", "resource",
                                            payload=BytesIO(b"hello"), length=5)])
    files.close()
    return rows[-1][0]


def add_row(database_url, job_id, name, *, node, size, records, closed) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO warc_files (job_id, name, node, worker, bytes, records, "
                     "closed_at) VALUES (%s, %s, %s, 'w1', %s, %s, "
                     "CASE WHEN %s THEN now() END)",
                     (job_id, name, node, size, records, closed))


def test_the_owner_lists_and_downloads_warc_files_others_cannot(client, users, database_url,
                                                               api_settings):
    job = insert_job(database_url, users["alice"])
    rows: list = []
    name = write_warc(api_settings.home / "warc", job, rows)
    _, size, records, closed = rows[-1]
    add_row(database_url, job, name, node=socket.gethostname(), size=size, records=records,
            closed=closed)
    add_row(database_url, job, f"{job}-w2-00001.warc.gz", node="elsewhere", size=10, records=1,
            closed=True)
    add_row(database_url, job, f"{job}-w3-00001.warc.gz", node=socket.gethostname(), size=10,
            records=1, closed=False)
    (api_settings.home / "secret.txt").write_text("top secret")
    alice, bob, root = (login(client, u) for u in ("alice", "bob", "root"))

    listed = client.get(f"/api/v1/jobs/{job}/warcs", headers=alice)
    assert listed.status_code == 200, listed.text
    files = {f["name"]: f for f in listed.json()["files"]}
    assert set(files) == {name, f"{job}-w2-00001.warc.gz", f"{job}-w3-00001.warc.gz"}
    assert files[name]["bytes"] == size == (api_settings.home / "warc" / name).stat().st_size
    assert files[name]["records"] == 2 and files[name]["closed"] is True
    assert files[f"{job}-w3-00001.warc.gz"]["closed"] is False

    for user in (alice, root):
        got = client.get(f"/api/v1/jobs/{job}/warcs/{name}", headers=user)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("application/warc")
        assert got.content == (api_settings.home / "warc" / name).read_bytes()
        uris = [r.rec_headers.get_header("WARC-Target-URI")
                for r in ArchiveIterator(BytesIO(got.content)) if r.rec_type == "resource"]
        assert uris == ["http://a.test/"]

    other_node = assert_error(client.get(f"/api/v1/jobs/{job}/warcs/{job}-w2-00001.warc.gz",
                                         headers=alice), 409)
    assert "elsewhere" in other_node["message"]
    assert_error(client.get(f"/api/v1/jobs/{job}/warcs/{job}-w3-00001.warc.gz", headers=alice),
                 409)
    # Another user sees neither the list nor a file: the job is not there for them.
    assert_error(client.get(f"/api/v1/jobs/{job}/warcs", headers=bob), 404)
    assert_error(client.get(f"/api/v1/jobs/{job}/warcs/{name}", headers=bob), 404)
    # Names that are not a WARC file name of this job never reach the disk.
    other_job = insert_job(database_url, users["alice"])
    for bad in ("..%2Fsecret.txt", "..%2F..%2Fsecret.txt", "secret.txt",
                f"{other_job}-w1-00001.warc.gz", f"{job}-w1-00001.warc.gz%00"):
        answer = client.get(f"/api/v1/jobs/{job}/warcs/{bad}", headers=alice)
        assert answer.status_code in (404, 422), (bad, answer.status_code)
        assert "top secret" not in answer.text
    # `..%2F` is decoded before routing and matches no route (404); a name that reaches
    # the handler is checked whole.
    assert_error(client.get(f"/api/v1/jobs/{job}/warcs/..{job}-w1-00001.warc.gz",
                            headers=alice), 422, field="name")
