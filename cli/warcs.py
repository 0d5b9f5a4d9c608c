"""`crawlgraph warcs JOB [--get NAME|--all] [--out DIR]`: a job's WARC files, listed or fetched.

A job submitted with ``crawlgraph crawl --warc`` archives every request and
response; this lists its files (node, bytes, records, closed) through the API
and downloads closed ones, each written as ``NAME.part`` and renamed once
whole. A file held by another node is named with its node (the API there
serves it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.client import ApiCallError, ApiClient, client_for
from cli.format import table


def cmd_warcs(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        files = client.call("GET", f"/api/v1/jobs/{args.job}/warcs")["files"]
        if not args.get and not args.all:
            if not files:
                print("no WARC files (was the job submitted with --warc?)")
                return 0
            rows = [[f["name"], f["node"], str(f["bytes"]), str(f["records"]),
                     "closed" if f["closed"] else "open"] for f in files]
            print(table(rows, ["NAME", "NODE", "BYTES", "RECORDS", "STATE"]))
            return 0
        names = [f["name"] for f in files if f["closed"]] if args.all else args.get
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = _download(client, args.job, name, out)
            print(f"{path} ({path.stat().st_size} bytes)")
        return 0
    finally:
        client.close()


def _download(client: ApiClient, job: str, name: str, out: Path) -> Path:
    # The API checks the name; this keeps it a plain file name here too.
    path = out / Path(name).name
    tmp = path.with_name(path.name + ".part")
    headers = {"Authorization": f"Bearer {client.token()}"}
    with client.http.stream("GET", f"/api/v1/jobs/{job}/warcs/{name}",
                            headers=headers) as response:
        if not response.is_success:
            response.read()
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {response.status_code}"
            raise ApiCallError(f"Cannot download {name}: {message}")
        with open(tmp, "wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
    tmp.replace(path)
    return path


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("warcs", help="list or download a job's WARC files")
    cmd.add_argument("job", metavar="JOB")
    cmd.add_argument("--get", action="append", metavar="NAME", help="download this file (repeat)")
    cmd.add_argument("--all", action="store_true", help="download every closed file")
    cmd.add_argument("--out", default="out", help="directory for downloads (default out/)")
    cmd.add_argument("--api-url", help="the API (default: the local stack's)")
    cmd.set_defaults(func=cmd_warcs)
