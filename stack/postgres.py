"""The embedded PostgreSQL: a private cluster under the data directory, on loopback."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from stack.errors import StackError
from stack.service import Service
from stack.settings import StackSettings
from stack.supervise import START_TIMEOUT, wait_until


def pg_bindir(settings: StackSettings) -> Path:
    """The directory of the PostgreSQL server binaries (`CRAWLGRAPH_PG_BIN`, else the newest)."""
    configured = settings.pg_bin
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


class Postgres(Service):
    """A private PostgreSQL cluster in `<home>/postgres`, listening on loopback."""

    process_marker = "postgres"
    port_setting = "CRAWLGRAPH_PG_PORT"

    @property
    def stack_settings(self) -> StackSettings:
        return StackSettings.from_env(self.environ)

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
            return ["runuser", "-u", self.stack_settings.pg_user, "--", *argv]
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
        bindir = pg_bindir(self.stack_settings)
        self._init(bindir, creds)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.logfile.touch()
            _chown(self.stack_settings.pg_user, self.logfile)
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
        wait_until(self._accepts_password, START_TIMEOUT, "PostgreSQL", self.logfile)
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
            _check_reachable(self.stack_settings.pg_user, self.datadir)
            _chown(self.stack_settings.pg_user, self.datadir)
            _chown(self.stack_settings.pg_user, pwfile)
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
                [str(pg_bindir(self.stack_settings) / "pg_ctl"), "-D", str(self.datadir),
                 "-m", "fast", "-w", "-t", "30", "stop"]
            ),
            capture_output=True,
        )
        super().stop()


def _chown(user: str, path: Path) -> None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise StackError(
            f"Running as root, PostgreSQL needs the system user {user!r}, "
            "which does not exist.",
            hint="Install Debian's postgresql package, set CRAWLGRAPH_PG_USER to "
            "another unprivileged user, or run as a normal user.",
        ) from None
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _check_reachable(user: str, path: Path) -> None:
    result = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(path.parent)],
        capture_output=True,
    )
    if result.returncode != 0:
        raise StackError(
            f"Running as root, PostgreSQL runs as the {user!r} user, who cannot "
            "reach the data directory.",
            hint="Set CRAWLGRAPH_HOME to a directory every user can traverse "
            "(e.g. under /var/tmp), or run as a normal user.",
        )
