"""`crawlgraph crawl | jobs | show | cancel | pages | users | token`: the job API from a shell.

The commands talk only to the API (`settings.api_url`, or `--api-url`). They
log in by themselves: `CRAWLGRAPH_USERNAME`/`CRAWLGRAPH_PASSWORD` if set, else
the local stack's admin from `credentials.json` in the data directory
(`CRAWLGRAPH_HOME`, default `.crawlgraph/`). The token is cached in the data
directory (`token.json`, mode 0600) until shortly before it expires.

`crawl --wait` (and `show JOB --wait`) shows a progress line (pages, pages/s,
errors, queue, elapsed) and ends with a summary; the exit status is 0 when the
job finished and 1 with the reason otherwise. Ctrl-C stops watching (the job
goes on) and says how to cancel it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from core.errors import CrawlgraphError
from core.settings import Settings, read_credentials

TOKEN_FILE = "token.json"
TERMINAL = {"finished", "failed", "cancelled"}
POLL_SECONDS = 1.0


class ApiCallError(CrawlgraphError):
    """The API answered with an error, or could not be reached."""


# --- the API client ---------------------------------------------------------------


class ApiClient:
    """A small synchronous client of the job API that logs in by itself."""

    def __init__(self, settings: Settings, api_url: str | None = None,
                 timeout: float = 30.0) -> None:
        self.settings = settings
        self.base = (api_url or settings.api_url).rstrip("/")
        self.http = httpx.Client(base_url=self.base, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    # credentials and token -------------------------------------------------------

    def _credentials(self) -> tuple[str, str]:
        username = os.environ.get("CRAWLGRAPH_USERNAME")
        password = os.environ.get("CRAWLGRAPH_PASSWORD")
        if username and password:
            return username, password
        creds = read_credentials(self.settings.home)
        if creds.get("admin_username") and creds.get("admin_password"):
            return creds["admin_username"], creds["admin_password"]
        raise ApiCallError(
            "No credentials for the API.",
            hint="Set CRAWLGRAPH_USERNAME and CRAWLGRAPH_PASSWORD, or run `crawlgraph up` "
            "(it writes the admin login into the data directory).",
        )

    def _token_path(self) -> Path:
        return self.settings.home / TOKEN_FILE

    def _cached_token(self, username: str) -> str | None:
        try:
            cached = json.loads(self._token_path().read_text())
        except (OSError, ValueError):
            return None
        if (cached.get("api") == self.base and cached.get("username") == username
                and cached.get("expires_at", 0) > time.time() + 60):
            return cached.get("access_token")
        return None

    def _store_token(self, username: str, token: str, expires_in: int) -> None:
        path = self._token_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"api": self.base, "username": username, "access_token": token,
                           "expires_at": time.time() + expires_in}, fh)
            os.chmod(path, 0o600)
        except OSError:
            pass  # a cache only: logging in again next time is fine

    def token(self, *, fresh: bool = False) -> str:
        username, password = self._credentials()
        if not fresh:
            self._token = self._token or self._cached_token(username)
            if self._token:
                return self._token
        body = self._send("POST", "/api/v1/auth/token", auth=False,
                          json={"username": username, "password": password})
        self._token = body["access_token"]
        self._store_token(username, self._token, int(body.get("expires_in", 0)))
        return self._token

    # requests -----------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._send(method, path, **kwargs)
        except ApiCallError as exc:
            if getattr(exc, "status", None) != 401:
                raise
            self.token(fresh=True)  # the cached token expired or the secret changed
            return self._send(method, path, **kwargs)

    def _send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ApiCallError(
                f"Cannot reach the API at {self.base} ({type(exc).__name__}).",
                hint="Start the local stack with `crawlgraph up`, or pass --api-url.",
            ) from None
        if response.is_success:
            return response.json() if response.content else None
        try:
            error = response.json()["error"]
            message, hint = error["message"], error.get("hint")
        except (ValueError, KeyError, TypeError):
            message, hint = f"HTTP {response.status_code}", None
        exc = ApiCallError(f"{message} (HTTP {response.status_code})", hint=hint)
        exc.status = response.status_code  # type: ignore[attr-defined]
        raise exc


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(Settings.from_env(), api_url=args.api_url)


# --- output helpers ------------------------------------------------------------------


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
              for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _stat(job: dict[str, Any], name: str) -> float:
    value = (job.get("stats") or {}).get(name, 0)
    return value if isinstance(value, int | float) else 0


def _queue(job: dict[str, Any]) -> int:
    live = job.get("frontier") or {}
    if live:
        return int(live.get("queued", 0)) + int(live.get("leased", 0))
    return int(_stat(job, "queue_length"))


# --- commands --------------------------------------------------------------------------


def cmd_crawl(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"start_urls": args.urls, "spider": args.spider,
                            "workers": args.workers, "render_js": args.js}
    if args.max_pages is not None:
        body["max_pages"] = args.max_pages
    if args.depth is not None:
        body["max_depth"] = args.depth
    if args.allow:
        body["allowed_domains"] = args.allow
    if args.tag:
        body["tags"] = args.tag
    client = _client(args)
    try:
        job = client.call("POST", "/api/v1/jobs", json=body)
        print(f"job {job['id']} submitted ({job['spider']}, {len(args.urls)} start URL"
              f"{'s' if len(args.urls) != 1 else ''}, {job['workers']} worker"
              f"{'s' if job['workers'] != 1 else ''})")
        if not args.wait:
            print(f"watch it with: crawlgraph show {job['id']}")
            return 0
        return watch(client, job["id"], max_pages=args.max_pages)
    finally:
        client.close()


def watch(client: ApiClient, job_id: str, *, max_pages: int | None = None,
          out: Any = None) -> int:
    """Show the job's progress until it ends; 0 when it finished, 1 otherwise."""
    out = out or sys.stdout
    tty = out.isatty()
    started = time.monotonic()
    last_line = ""
    last_print = 0.0
    try:
        while True:
            job = client.call("GET", f"/api/v1/jobs/{job_id}")
            line = _progress(job, time.monotonic() - started, max_pages)
            now = time.monotonic()
            if tty:
                out.write("\r" + line.ljust(len(last_line)))
                out.flush()
            elif line != last_line and now - last_print >= 1.0 or job["status"] in TERMINAL:
                print(line, file=out)
                last_print = now
            last_line = line
            if job["status"] in TERMINAL:
                break
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        if tty:
            out.write("\n")
        print(f"stopped watching; the job goes on. Cancel it with: crawlgraph cancel {job_id}",
              file=out)
        return 130
    if tty:
        out.write("\n")
    print(_summary(job, time.monotonic() - started), file=out)
    return 0 if job["status"] == "finished" else 1


def _progress(job: dict[str, Any], elapsed: float, max_pages: int | None) -> str:
    pages = int(_stat(job, "pages"))
    rate = _stat(job, "pages_per_s") or (pages / elapsed if elapsed > 0 else 0.0)
    if max_pages:
        done = min(1.0, pages / max_pages)
        bar = "[" + "#" * int(done * 20) + "." * (20 - int(done * 20)) + f"] {done:4.0%} "
    else:
        bar = ""
    return (f"{bar}{job['status']:<9} pages {pages}  {rate:.1f} pages/s  errors "
            f"{int(_stat(job, 'errors'))}  queue {_queue(job)}  elapsed {_duration(elapsed)}")


def _summary(job: dict[str, Any], elapsed: float) -> str:
    lines = [
        f"job {job['id']} {job['status']}"
        + (f" ({job['close_reason']})" if job.get("close_reason") else ""),
        f"  pages {int(_stat(job, 'pages'))}, items {int(_stat(job, 'items'))}, "
        f"errors {int(_stat(job, 'errors'))}, rows stored {int(_stat(job, 'rows_stored'))}, "
        f"elapsed {_duration(elapsed)}",
    ]
    if job.get("error"):
        lines.append(f"  reason: {job['error']}")
    if job["status"] == "finished":
        lines.append(f"  pages: crawlgraph pages {job['id']}")
    return "\n".join(lines)


def cmd_jobs(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.tag:
        params["tag"] = args.tag
    client = _client(args)
    try:
        page = client.call("GET", "/api/v1/jobs", params=params)
    finally:
        client.close()
    rows = [[j["id"], j["status"], j["spider"], str(int(_stat(j, "pages"))),
             j["created_at"][:19].replace("T", " "), ",".join(j["tags"])]
            for j in page["items"]]
    print(_table(rows, ["ID", "STATUS", "SPIDER", "PAGES", "CREATED", "TAGS"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        job = client.call("GET", f"/api/v1/jobs/{args.job}")
        if args.wait:
            return watch(client, job["id"], max_pages=job["params"].get("max_pages"))
    finally:
        client.close()
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    print(f"job      {job['id']}\nstatus   {job['status']}"
          + (f" ({job['close_reason']})" if job.get("close_reason") else "")
          + f"\nspider   {job['spider']}\nworkers  {job['workers']}\ncreated  "
          f"{job['created_at']}\nstart    {', '.join(job['params'].get('start_urls', [])[:5])}")
    print(f"pages {int(_stat(job, 'pages'))}, items {int(_stat(job, 'items'))}, errors "
          f"{int(_stat(job, 'errors'))}, queue {_queue(job)}")
    if job.get("error"):
        print(f"error    {job['error']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        job = client.call("POST", f"/api/v1/jobs/{args.job}/cancel")
    finally:
        client.close()
    print(f"job {job['id']} {job['status']}")
    return 0


def cmd_pages(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": min(args.limit, 500)}
    if args.status is not None:
        params["status"] = args.status
    if args.prefix:
        params["url_prefix"] = args.prefix
    client = _client(args)
    shown = 0
    try:
        while shown < args.limit:
            page = client.call("GET", f"/api/v1/jobs/{args.job}/pages", params=params)
            for item in page["items"][: args.limit - shown]:
                print(f"{item['status']:>3}  {item['url']}"
                      + (f"  {item['title']}" if item.get("title") else ""))
                shown += 1
            if not page.get("next_cursor"):
                break
            params["cursor"] = page["next_cursor"]
    finally:
        client.close()
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    password = args.password or (sys.stdin.readline().rstrip("\n") if args.password_stdin
                                 else getpass.getpass(f"password for {args.username}: "))
    client = _client(args)
    try:
        user = client.call("POST", "/api/v1/users", json={
            "username": args.username, "password": password,
            "role": "admin" if args.admin else "user"})
    finally:
        client.close()
    print(f"user {user['username']} ({user['role']}) created, id {user['id']}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        users = client.call("GET", "/api/v1/users")["items"]
    finally:
        client.close()
    rows = [[str(u["id"]), u["username"], u["role"], "yes" if u["disabled"] else "no"]
            for u in users]
    print(_table(rows, ["ID", "USERNAME", "ROLE", "DISABLED"]))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        print(client.token(fresh=args.fresh))
    finally:
        client.close()
    return 0


# --- the parser ---------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the API (default: the local stack's)")

    crawl = subparsers.add_parser("crawl", parents=[common], help="submit a crawl job")
    crawl.add_argument("urls", nargs="+", metavar="URL", help="start URLs")
    crawl.add_argument("--spider", default="site", help="spider to run (default: site)")
    crawl.add_argument("--max-pages", type=int, help="stop after this many pages")
    crawl.add_argument("--depth", type=int, help="follow links this many levels deep")
    crawl.add_argument("--js", action="store_true", help="render pages in Chromium")
    crawl.add_argument("--workers", type=int, default=1, help="crawler processes (default 1)")
    crawl.add_argument("--allow", action="append", metavar="DOMAIN",
                       help="allowed domain (repeat; default: the start hosts)")
    crawl.add_argument("--tag", action="append", help="tag the job (repeat)")
    crawl.add_argument("--wait", action="store_true", help="show progress until it ends")
    crawl.set_defaults(func=cmd_crawl)

    jobs = subparsers.add_parser("jobs", parents=[common], help="list your jobs, newest first")
    jobs.add_argument("--status", choices=["pending", "running", "paused", "finished",
                                           "failed", "cancelled"])
    jobs.add_argument("--tag")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=cmd_jobs)

    show = subparsers.add_parser("show", parents=[common], help="show one job")
    show.add_argument("job", metavar="JOB")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    show.add_argument("--wait", action="store_true", help="show progress until it ends")
    show.set_defaults(func=cmd_show)

    cancel = subparsers.add_parser("cancel", parents=[common], help="cancel a job")
    cancel.add_argument("job", metavar="JOB")
    cancel.set_defaults(func=cmd_cancel)

    pages = subparsers.add_parser("pages", parents=[common], help="list a job's pages")
    pages.add_argument("job", metavar="JOB")
    pages.add_argument("--status", type=int, help="only this HTTP status")
    pages.add_argument("--prefix", help="only URLs starting with this")
    pages.add_argument("--limit", type=int, default=100)
    pages.set_defaults(func=cmd_pages)

    users = subparsers.add_parser("users", help="manage users (admin)")
    users_sub = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    add = users_sub.add_parser("add", parents=[common], help="create a user")
    add.add_argument("username")
    add.add_argument("--admin", action="store_true", help="with the admin role")
    add.add_argument("--password", help="the password (default: asked for)")
    add.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    add.set_defaults(func=cmd_users_add)
    listing = users_sub.add_parser("list", parents=[common], help="list users")
    listing.set_defaults(func=cmd_users_list)

    token = subparsers.add_parser("token", parents=[common],
                                  help="print an access token (for curl: -H 'Authorization: "
                                       "Bearer ...')")
    token.add_argument("--fresh", action="store_true", help="log in again")
    token.set_defaults(func=cmd_token)
