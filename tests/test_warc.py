"""WARC archives of a crawl (`crawler.middlewares.warc`), read back with warcio."""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import subprocess
import sys
from base64 import b32encode
from io import BytesIO
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from crawler.warcfiles import NAME, WarcFiles, close_out
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def read_warcs(directory: Path) -> list[dict]:
    """Every record of every closed file, with its raw payload and parsed headers."""
    records = []
    for path in sorted(directory.glob("*.warc.gz")):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh, check_digests=True):
                raw = record.raw_stream.read()
                records.append({"file": path.name, "type": record.rec_type,
                                "uri": record.rec_headers.get_header("WARC-Target-URI"),
                                "headers": record.rec_headers, "http": record.http_headers,
                                "raw": raw, "digest_ok": record.digest_checker.passed})
    return records


def b32_sha1(data: bytes) -> str:
    return "sha1:" + b32encode(hashlib.sha1(data).digest()).decode()


def test_a_crawl_archives_every_fetch_as_served(mock_server, tmp_path):
    server = mock_server(pages=60, seed=3)
    bomb = server.origin + "/bomb?mb=1"
    result = run_crawl(SITE, {"start_urls": json.dumps([server.start_url, bomb]), "warc": "true"},
                       {**LOOPBACK, "CRAWLGRAPH_WARC_DIR": str(tmp_path)})
    assert result.reason == "finished", result.log[-3000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and NAME.match(files[0]), files  # closed: no .open left
    records = read_warcs(tmp_path)
    assert records[0]["type"] == "warcinfo"
    warcinfo_id = records[0]["headers"].get_header("WARC-Record-ID")
    responses = [r for r in records if r["type"] == "response"]
    requests = [r for r in records if r["type"] == "request"]
    truth = server.site.page_urls(server.origin)
    fetched = collections.Counter(r["uri"] for r in responses)
    assert set(fetched) == truth | {server.origin + "/robots.txt", bomb}
    assert max(fetched.values()) == 1
    assert len(server.requests()) == len(responses) == len(requests)
    by_id = {r["headers"].get_header("WARC-Record-ID"): r for r in responses}
    for request in requests:
        answered = by_id[request["headers"].get_header("WARC-Concurrent-To")]
        assert answered["uri"] == request["uri"]
        http = request["http"]
        assert http.protocol == "GET" and http.statusline.startswith("/")
        # As sent: after the compression middleware asked for gzip.
        assert "gzip" in http.get_header("Accept-Encoding")
        assert http.get_header("Host") == server.origin.split("://")[1]
    for record in responses + requests:
        assert record["headers"].get_header("WARC-Warcinfo-ID") == warcinfo_id
        assert record["headers"].get_header("WARC-Date")
    for record in responses:
        assert record["digest_ok"] is True
        assert record["headers"].get_header("WARC-Payload-Digest") == b32_sha1(record["raw"])
    # The gzip body is kept as served: compressed on the wire, compressed in the archive.
    served = next(r for r in responses if r["uri"] == bomb)
    assert served["http"].get_header("Content-Encoding") == "gzip"
    assert gzip.decompress(served["raw"]) == b"\0" * (1 << 20)
    page = next(r for r in responses if r["uri"] == server.origin + "/p/1")
    assert page["http"].get_statuscode() == "200" and b"<html" in page["raw"].lower()
    # The archive passes warcio's own validator.
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v",
                            str(tmp_path / files[0])], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_files_rotate_at_the_size_limit_each_one_readable(mock_server, tmp_path):
    server = mock_server(pages=40, seed=5)
    result = run_crawl(SITE, {"start_urls": json.dumps([server.start_url]), "warc": "true"},
                       {**LOOPBACK, "CRAWLGRAPH_WARC_DIR": str(tmp_path),
                        "CRAWLGRAPH_WARC_MAX_BYTES": 8000})
    assert result.reason == "finished", result.log[-3000:]
    files = sorted(tmp_path.iterdir())
    assert len(files) >= 3 and all(NAME.match(p.name) for p in files), files
    assert [p.name[-13:-8] for p in files] == [f"{i:05d}" for i in range(1, len(files) + 1)]
    uris = []
    for path in files:
        with open(path, "rb") as fh:
            kinds = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
                     for r in ArchiveIterator(fh)]
        assert kinds[0][0] == "warcinfo"  # each file stands on its own
        uris += [uri for kind, uri in kinds if kind == "response"]
    assert set(uris) == server.site.page_urls(server.origin) | {server.origin + "/robots.txt"}
    assert len(uris) == len(set(uris))


def test_a_dead_writers_file_is_closed_out_up_to_its_last_whole_record(tmp_path):
    rows = []
    files = WarcFiles(tmp_path, "0" * 8 + "-0000-0000-0000-" + "0" * 12, "w1", max_bytes=10**9,
                      on_file=lambda *row: rows.append(row), info={"software": "test"})
    builder = files.record_writer()
    for i in range(5):
        files.write([builder.create_warc_record(f"http://a.test/{i}", "resource",
                                                payload=BytesIO(b"x" * 1000), length=1000)])
    path = next(tmp_path.iterdir())
    assert path.name.endswith(".open")
    assert close_out(path) is None  # this writer still holds it
    files._fh.close()  # the process dies: its lock goes with it, the file stays .open
    with open(path, "ab") as fh:
        fh.write(b"\x1f\x8b\x08\x00half a record")
    name, size, records = close_out(path)
    assert records == 6 and not path.exists()
    with open(tmp_path / name, "rb") as fh:
        assert [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(fh)
                if r.rec_type == "resource"] == [f"http://a.test/{i}" for i in range(5)]
    assert (tmp_path / name).stat().st_size == size
