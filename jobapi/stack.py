"""The embedded local stack: PostgreSQL, Redis, scrapyd, the API and the graph worker.

`crawlgraph up` starts each embedded service under the data directory
(`.crawlgraph/`, or `CRAWLGRAPH_HOME`), waits until it is healthy and records
its pid in `<service>.pid`; `down` stops only what `up` started; `status`
reports each service. A service whose URL is configured (`DATABASE_URL`,
`REDIS_URL`, `SCRAPYD_URLS`) is used as it is and never started or stopped.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
import psutil

from core.errors import StackError
from core.settings import CREDENTIALS_FILE, Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYOUT_VERSION = "1"
PG_MAJOR = "15"
START_TIMEOUT = 60.0
# Services this process started and has not stopped yet: kept so that they can
# be reaped (and are not reported as leaked while still running on purpose).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _log(message: str) -> None:
    print(f"crawlgraph: {message}", flush=True)


def ensure_credentials(home: Path) -> dict[str, str]:
    """Create the data directory and its generated secrets (mode 0600) once."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    version_file = home / "VERSION"
    if version_file.exists():
        found = version_file.read_text().strip()
        if found != LAYOUT_VERSION:
            raise StackError(
                f"The data directory {home.name}/ was made by another crawlgraph version "
                f"(layout {found}, this one uses {LAYOUT_VERSION}).",
                hint="Point CRAWLGRAPH_HOME at a new directory, or remove this one "
                "(its crawl data goes with it).",
            )
    else:
        version_file.write_text(LAYOUT_VERSION + "\n")
    path = home / CREDENTIALS_FILE
    if path.exists():
        creds = json.loads(path.read_text())
    else:
        creds = {}
    wanted = {
        "postgres_password": lambda: secrets.token_urlsafe(24),
        "redis_password": lambda: secrets.token_urlsafe(24),
        "scrapyd_username": lambda: "crawlgraph",
        "scrapyd_password": lambda: secrets.token_urlsafe(24),
        "admin_username": lambda: "admin",
        "admin_password": lambda: secrets.token_urlsafe(18),
        "jwt_secret": lambda: secrets.token_hex(32),
    }
    changed = False
    for key, make in wanted.items():
        if not creds.get(key):
            creds[key] = make()
            changed = True
    if changed:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds, fh, indent=2)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return creds


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait(check: Callable[[], bool], timeout: float, what: str, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    tail = ""
    if log is not None and log.exists():
        tail = "\n  last log lines:\n    " + "\n    ".join(log.read_text().splitlines()[-8:])
    raise StackError(
        f"{what} did not become healthy within {timeout:.0f} s.{tail}",
        hint="Read its log in the data directory's logs/ folder.",
    )


def _pg_bindir() -> Path:
    configured = os.environ.get("CRAWLGRAPH_PG_BIN")
    candidates = [configured] if configured else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
    )[::-1]
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise StackError(
        "The PostgreSQL server binaries (initdb, pg_ctl) were not found.",
        hint="Run `make setup` (it installs Debian's postgresql package) "
        "or set DATABASE_URL to an existing server.",
    )


@dataclass
class Service:
    """One embedded service: how to start it, check it and stop it."""

    name: str
    settings: Settings
    # The environment the stack was configured from; services inherit it.
    environ: dict[str, str]

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def pidfile(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.home / "logs" / f"{self.name}.log"

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # Names the process must show in its command line, so that a recycled pid
    # is never mistaken for the service.
    process_marker: ClassVar[str] = ""

    def pid(self) -> int | None:
        """The pid from the pid file if that process is alive and is this service."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if self.process_marker and self.process_marker not in " ".join(proc.cmdline()):
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return pid

    @property
    def configfile(self) -> Path:
        return self.home / f"{self.name}.config"

    def config(self) -> str:
        """What the running service was started with; a change means a restart."""
        env = self.settings.service_env()
        env.pop("DATABASE_URL"), env.pop("REDIS_URL")  # secrets: compared by their hash below
        return hashlib.sha256(
            json.dumps([self.port, env, self.settings.database_url, self.settings.redis_url,
                        list(self.settings.scrapyd_urls)], sort_keys=True).encode()
        ).hexdigest()

    def config_changed(self) -> bool:
        try:
            return self.configfile.read_text().strip() != self.config()
        except FileNotFoundError:
            return False

    def healthy(self) -> bool:
        raise NotImplementedError

    def start(self, creds: dict[str, str]) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            _terminate_group(pid)
        self.pidfile.unlink(missing_ok=True)

    def _spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> int:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid


def _terminate_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the service's process group (it and its children), then SIGKILL."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    if pgid == os.getpgid(0):
        # Never signal our own group: a service always runs in a session of its own.
        raise StackError(f"Refusing to stop pid {pid}: it is in crawlgraph's own process group.")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    child = _CHILDREN.pop(pid, None)
    while time.monotonic() < deadline:
        if child is not None:
            child.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if child is not None:
        child.wait()


class Postgres(Service):
    """A private PostgreSQL cluster in `<home>/postgres`, listening on loopback."""

    process_marker = "postgres"

    def config(self) -> str:
        return str(self.port)

    @property
    def port(self) -> int:
        return self.settings.pg_port

    @property
    def datadir(self) -> Path:
        return self.home / "postgres"

    def _as_owner(self, argv: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: run it as the `postgres` user then.
        if os.geteuid() == 0:
            return ["runuser", "-u", _pg_user(), "--", *argv]
        return argv

    def healthy(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def start(self, creds: dict[str, str]) -> None:
        bindir = _pg_bindir()
        self._init(bindir, creds)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.logfile.touch()
            _chown(self.logfile)
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.datadir}"
        )
        result = subprocess.run(
            self._as_owner(
                [str(bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                 "-o", options, "-w", "-t", "60", "start"]
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL did not start: {result.stderr.strip() or result.stdout.strip()}",
                hint="Read logs/postgres.log in the data directory.",
            )
        pid = (self.datadir / "postmaster.pid").read_text().split()[0]
        self.pidfile.write_text(f"{pid}\n")
        _wait(self._accepts_password, START_TIMEOUT, "PostgreSQL", self.logfile)
        self._ensure_database(creds)

    def _accepts_password(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._admin_url(), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def _admin_url(self) -> str:
        url = urlsplit(self.settings.database_url)
        return url._replace(path="/postgres").geturl()

    def _init(self, bindir: Path, creds: dict[str, str]) -> None:
        version_file = self.datadir / "PG_VERSION"
        if version_file.exists():
            found = version_file.read_text().strip()
            if found != bindir.parent.name:
                raise StackError(
                    f"The PostgreSQL data in the data directory is version {found}, "
                    f"but the installed server is {bindir.parent.name}.",
                    hint="Dump and restore it with that version's pg_dump, or move "
                    "CRAWLGRAPH_HOME to a new directory.",
                )
            return
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise StackError(
                f"{self.datadir.name}/ in the data directory is not a PostgreSQL cluster.",
                hint="Remove it (it holds no cluster) and run `crawlgraph up` again.",
            )
        self.datadir.mkdir(parents=True, exist_ok=True)
        pwfile = self.home / "postgres.pwfile"
        pwfile.write_text(creds["postgres_password"] + "\n")
        os.chmod(pwfile, 0o600)
        if os.geteuid() == 0:
            _check_reachable_by_pg_user(self.datadir)
            _chown(self.datadir)
            _chown(pwfile)
        try:
            result = subprocess.run(
                self._as_owner(
                    [str(bindir / "initdb"), "-D", str(self.datadir), "-U", "crawlgraph",
                     f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer",
                     "--encoding=UTF8", "--locale=C.UTF-8"]
                ),
                capture_output=True,
                text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise StackError(f"initdb failed: {result.stderr.strip()}")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# crawlgraph: a small private cluster tuned for bulk writes\n"
                "shared_buffers = 256MB\nwork_mem = 32MB\nmaintenance_work_mem = 256MB\n"
                "max_connections = 200\nwal_level = minimal\nmax_wal_senders = 0\n"
                "max_wal_size = 2GB\nsynchronous_commit = on\nfsync = on\n"
            )

    def _ensure_database(self, creds: dict[str, str]) -> None:
        import psycopg

        with psycopg.connect(self._admin_url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'crawlgraph'"
            ).fetchone()
            if not exists:
                conn.execute("CREATE DATABASE crawlgraph")

    def stop(self) -> None:
        if self.pid() is None:
            self.pidfile.unlink(missing_ok=True)
            return
        subprocess.run(
            self._as_owner(
                [str(_pg_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                 "-w", "-t", "30", "stop"]
            ),
            capture_output=True,
        )
        super().stop()


def _pg_user() -> str:
    return os.environ.get("CRAWLGRAPH_PG_USER", "postgres")


def _chown(path: Path) -> None:
    try:
        entry = pwd.getpwnam(_pg_user())
    except KeyError:
        raise StackError(
            f"Running as root, PostgreSQL needs the system user {_pg_user()!r}, "
            "which does not exist.",
            hint="Install Debian's postgresql package, set CRAWLGRAPH_PG_USER to "
            "another unprivileged user, or run as a normal user.",
        ) from None
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _check_reachable_by_pg_user(path: Path) -> None:
    result = subprocess.run(
        ["runuser", "-u", _pg_user(), "--", "test", "-x", str(path.parent)],
        capture_output=True,
    )
    if result.returncode != 0:
        raise StackError(
            f"Running as root, PostgreSQL runs as the {_pg_user()!r} user, who cannot "
            "reach the data directory.",
            hint="Set CRAWLGRAPH_HOME to a directory every user can traverse "
            "(e.g. under /var/tmp), or run as a normal user.",
        )


class Redis(Service):
    """A private redis-server with append-only persistence in `<home>/redis`."""

    process_marker = "redis-server"

    def config(self) -> str:
        return str(self.port)

    @property
    def port(self) -> int:
        return self.settings.redis_port

    def healthy(self) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def start(self, creds: dict[str, str]) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError(
                "redis-server was not found.",
                hint="Run `make setup` (it installs Debian's redis-server) or set REDIS_URL.",
            )
        workdir = self.home / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                f"bind 127.0.0.1\nport {self.port}\nprotected-mode yes\n"
                f'requirepass "{creds["redis_password"]}"\n'
                f"dir {workdir}\ndaemonize no\n"
                # The frontier must survive a restart: append-only file, fsync every second.
                "appendonly yes\nappendfsync everysec\nsave \"\"\n"
                "maxmemory-policy noeviction\n"
            )
        self._spawn([binary, str(conf)], dict(self.environ), workdir)
        _wait(self.healthy, START_TIMEOUT, "Redis", self.logfile)


class Scrapyd(Service):
    """scrapyd on loopback with basic auth, running this project from the checkout."""

    process_marker = "scrapyd"

    @property
    def port(self) -> int:
        return self.settings.scrapyd_port

    @property
    def url(self) -> str:
        return self.settings.scrapyd_urls[0]

    def healthy(self) -> bool:
        url = urlsplit(self.url)
        auth = (url.username or "", url.password or "")
        base = url._replace(netloc=f"{url.hostname}:{url.port}").geturl()
        try:
            response = httpx.get(f"{base}/daemonstatus.json", auth=auth, timeout=2)
            return response.status_code == 200 and response.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def start(self, creds: dict[str, str]) -> None:
        workdir = self.home / "scrapyd"
        workdir.mkdir(parents=True, exist_ok=True)
        for name in ("scrapyd.conf", "scrapy.cfg"):
            link = workdir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(REPO_ROOT / name)
        env = dict(self.environ)
        env.update(self.settings.service_env())
        env.update(
            SCRAPYD_BIND_ADDRESS="127.0.0.1",
            SCRAPYD_HTTP_PORT=str(self.port),
            SCRAPYD_USERNAME=creds["scrapyd_username"],
            SCRAPYD_PASSWORD=creds["scrapyd_password"],
        )
        self._spawn(
            [sys.executable, "-m", "scrapyd", "--pidfile=", f"--logfile={self.logfile}"],
            env,
            workdir,
        )
        _wait(self.healthy, START_TIMEOUT, "scrapyd", self.logfile)


class Api(Service):
    """The job API served by uvicorn on loopback."""

    process_marker = "uvicorn"

    @property
    def port(self) -> int:
        return self.settings.api_port

    @property
    def address(self) -> str:
        return f"{self.settings.api_host}:{self.port}"

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.settings.api_url}/health", timeout=5)
            # 503 means the API runs but a service it uses is down: that service
            # is the stack's to restart, not the API.
            return response.status_code in (200, 503)
        except httpx.HTTPError:
            return False

    def start(self, creds: dict[str, str]) -> None:
        env = dict(self.environ)
        env["CRAWLGRAPH_HOME"] = str(self.home)
        self._spawn(
            [sys.executable, "-m", "uvicorn", "--factory", "jobapi.app:app_from_env",
             "--host", self.settings.api_host, "--port", str(self.port),
             "--no-access-log", "--log-level", "warning",
             # The app decides whose X-Forwarded-For to believe
             # (CRAWLGRAPH_TRUSTED_PROXIES); uvicorn's own handling would believe
             # any client on 127.0.0.1 and let it reset the login rate limit.
             "--no-proxy-headers"],
            env,
            REPO_ROOT,
        )
        _wait(self.healthy, START_TIMEOUT, "the API", self.logfile)


class GraphWorker(Service):
    """A graph build worker (`crawlgraph graph-worker`); healthy while it runs."""

    process_marker = "graph-worker"

    @property
    def port(self) -> int:
        return 0

    @property
    def address(self) -> str:
        return "-"

    def healthy(self) -> bool:
        return self.pid() is not None

    def start(self, creds: dict[str, str]) -> None:
        env = dict(self.environ)
        env.update(self.settings.service_env())
        self._spawn([sys.executable, "-m", "jobapi.cli", "graph-worker"], env, REPO_ROOT)
        # Give it a moment to fail on a bad configuration rather than report it started.
        time.sleep(0.5)
        _wait(self.healthy, START_TIMEOUT, self.name, self.logfile)


def make_services(settings: Settings, environ: Mapping[str, str]) -> list[Service]:
    """The embedded services of this configuration, in start order."""
    env = dict(environ)
    services: list[Service] = []
    if settings.embedded_postgres:
        services.append(Postgres("postgres", settings, env))
    if settings.embedded_redis:
        services.append(Redis("redis", settings, env))
    if settings.embedded_scrapyd:
        services.append(Scrapyd("scrapyd", settings, env))
    services.append(Api("api", settings, env))
    for n in range(1, settings.graph_workers + 1):
        services.append(GraphWorker(f"graph-worker-{n}", settings, env))
    return services


class Stack:
    """Starts, stops and reports the embedded services of one data directory."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, only: Iterable[str] | None = None
    ) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.only = set(only) if only is not None else None
        self._load()

    def _load(self) -> None:
        self.settings = Settings.from_env(self.environ)
        self.services = [
            s for s in make_services(self.settings, self.environ)
            if self.only is None or s.name in self.only
        ]

    def up(self) -> list[str]:
        """Start what is not running; return the names of the services started."""
        creds = ensure_credentials(self.settings.home)
        # The URLs carry the generated secrets: read them again now they exist.
        self._load()
        started = []
        for service in self.services:
            if service.pid() is not None and service.config_changed():
                _log(f"restarting {service.name}: its configuration changed")
                service.stop()
            elif service.pid() is not None and service.healthy():
                continue
            if service.pid() is not None:
                # Alive but unhealthy: replace it rather than guess.
                service.stop()
            else:
                service.pidfile.unlink(missing_ok=True)
            if service.port and port_in_use(service.port):
                raise StackError(
                    f"Port {service.port} for {service.name} is in use by another program.",
                    hint=f"Stop that program, or choose another port with "
                    f"CRAWLGRAPH_{service.name.upper()}_PORT.",
                )
            _log(f"starting {service.name} on {service.address}")
            service.start(creds)
            service.configfile.write_text(service.config() + "\n")
            started.append(service.name)
            if service.name == "postgres":
                self._prepare_database(creds)
        if not self.settings.embedded_postgres:
            self._prepare_database(creds)
        return started

    def _prepare_database(self, creds: dict[str, str]) -> None:
        from core.migrate import upgrade
        from jobapi.users import ensure_admin

        applied = upgrade(self.settings.database_url)
        if applied:
            _log(f"applied migrations: {', '.join(applied)}")
        ensure_admin(self.settings.database_url, creds["admin_username"], creds["admin_password"])

    def down(self) -> list[str]:
        """Stop the services that `up` started; return their names."""
        stopped = []
        for service in reversed(self.services):
            if service.pid() is not None:
                service.stop()
                stopped.append(service.name)
            else:
                service.pidfile.unlink(missing_ok=True)
            service.configfile.unlink(missing_ok=True)
        return stopped

    def status(self) -> list[dict[str, object]]:
        rows = []
        for service in self.services:
            pid = service.pid()
            rows.append(
                {
                    "service": service.name,
                    "pid": pid,
                    "address": service.address,
                    "healthy": pid is not None and service.healthy(),
                }
            )
        return rows
