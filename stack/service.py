"""`Service`: one embedded service, how to start it, check it and stop it."""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil

from core.settings import Settings
from stack.supervise import reap, spawn, terminate_group


@dataclass
class Service(abc.ABC):
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

    #: The environment variable that sets this service's port (named in errors).
    port_setting: ClassVar[str] = ""

    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The loopback port it listens on (0: none)."""

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
        if reap(pid):
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

    @abc.abstractmethod
    def healthy(self) -> bool:
        """Whether the service answers as it should."""

    @abc.abstractmethod
    def start(self, creds: dict[str, str]) -> None:
        """Start it and wait until it is healthy (`StackError` if it does not become so)."""

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate_group(pid)
        self.pidfile.unlink(missing_ok=True)

    def _spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> int:
        pid = spawn(argv, env, cwd, self.logfile)
        self.pidfile.write_text(f"{pid}\n")
        return pid
