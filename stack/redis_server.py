"""The embedded Redis: a private redis-server with append-only persistence."""

from __future__ import annotations

import os
import shutil

from stack.errors import StackError
from stack.service import Service
from stack.supervise import START_TIMEOUT, wait_until


class Redis(Service):
    """A private redis-server with append-only persistence in `<home>/redis`."""

    process_marker = "redis-server"
    port_setting = "CRAWLGRAPH_REDIS_PORT"

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
        wait_until(self.healthy, START_TIMEOUT, "Redis", self.logfile)
