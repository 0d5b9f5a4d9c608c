"""`Stack`: start, stop and report the embedded services of one data directory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from core.settings import Settings
from stack.api import Api
from stack.commands import GraphWorker, Purger, Scheduler, WebhookSender
from stack.credentials import ensure_credentials
from stack.errors import StackError
from stack.postgres import Postgres
from stack.redis_server import Redis
from stack.scrapyd import Scrapyd
from stack.service import Service
from stack.supervise import log, port_in_use


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
    services.append(Scheduler("scheduler", settings, env))
    services.append(WebhookSender("webhook-sender", settings, env))
    services.append(Purger("purger", settings, env))
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
                log(f"restarting {service.name}: its configuration changed")
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
                    f"{service.port_setting}.",
                )
            log(f"starting {service.name} on {service.address}")
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
            log(f"applied migrations: {', '.join(applied)}")
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
