"""`crawlgraph crawl --warc` and `crawlgraph warcs` against a real API and scrapyd workers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from tests.test_cli_jobs import api_env, cli  # noqa: F401 (api_env is a fixture)


def test_crawl_with_warc_then_list_and_download_the_files(api_env, mock_server,  # noqa: F811
                                                          stack_settings, tmp_path):
    site = mock_server(pages=15, seed=7)
    done = cli(api_env, "crawl", site.start_url, "--warc", "--wait", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    job = re.search(r"job ([0-9a-f-]{36}) submitted", done.stdout).group(1)
    listed = cli(api_env, "warcs", job)
    assert listed.returncode == 0, listed.stderr
    names = re.findall(rf"^({job}-\w+-\d{{5}}\.warc\.gz)\s+\S+\s+(\d+)\s+(\d+)\s+closed$",
                       listed.stdout, re.MULTILINE)
    assert len(names) == 1, listed.stdout
    name, size, records = names[0]
    # The session's scrapyd workers keep their data directory; this test's API has its
    # own: the file moves to the API's node as it would sit on a one-node stack.
    written = Path(stack_settings.home) / "warc" / name
    assert written.stat().st_size == int(size)
    api_warcs = Path(api_env["CRAWLGRAPH_HOME"]) / "warc"
    api_warcs.mkdir(exist_ok=True)
    shutil.move(written, api_warcs / name)
    got = cli(api_env, "warcs", job, "--all", "--out", str(tmp_path))
    assert got.returncode == 0, got.stderr
    with open(tmp_path / name, "rb") as fh:
        records_read = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
                        for r in ArchiveIterator(fh)]
    assert len(records_read) == int(records)
    assert {uri for kind, uri in records_read if kind == "response"} == \
        site.site.page_urls(site.origin) | {site.origin + "/robots.txt"}
    refused = cli(api_env, "warcs", job, "--get", f"{job}-x-99999.warc.gz", "--out",
                  str(tmp_path))
    assert refused.returncode == 2 and "no WARC file" in refused.stderr
