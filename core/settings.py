"""The one setting source of crawlgraph: `Settings.from_env()`.

Settings are read once, at start, from the environment (never at import). The
URLs of the embedded local stack are derived from the data directory and the
generated credentials in it; `DATABASE_URL`, `REDIS_URL` and `SCRAPYD_URLS`
replace the embedded service of that kind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import msgspec

from core.errors import ConfigError

CREDENTIALS_FILE = "credentials.json"


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean.", hint="Use 1 or 0.")


def _int(value: str, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer.") from None
    if not low <= number <= high:
        raise ConfigError(f"{name}={number} is out of range.", hint=f"Use {low}..{high}.")
    return number


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def read_credentials(home: Path) -> dict[str, str]:
    """Return the generated credentials of the local stack, or {} before the first `up`."""
    path = home / CREDENTIALS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot read {path.name} in the data directory: {exc}.",
            hint="Remove it and run `crawlgraph up` to generate new credentials.",
        ) from exc


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything crawlgraph's services read from the environment."""

    home: Path
    database_url: str
    redis_url: str
    scrapyd_urls: tuple[str, ...]
    embedded_postgres: bool
    embedded_redis: bool
    embedded_scrapyd: bool
    pg_port: int = 55432
    redis_port: int = 56379
    scrapyd_port: int = 56800
    api_host: str = "127.0.0.1"
    api_port: int = 8800
    api_workers: int = 1
    allow_private_networks: bool = False
    jwt_secret: str | None = None
    jwt_issuer: str = "crawlgraph"
    jwt_audience: str = "crawlgraph-api"
    token_ttl_seconds: int = 3600
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    graph_workers: int = 1
    log_level: str = "INFO"
    # The command line's login to the API (else the local stack's admin).
    username: str | None = None
    password: str | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("CRAWLGRAPH_HOME") or ".crawlgraph").resolve()
        creds = read_credentials(home)
        pg_port = _int(env.get("CRAWLGRAPH_PG_PORT", "55432"), "CRAWLGRAPH_PG_PORT", 1, 65535)
        redis_port = _int(
            env.get("CRAWLGRAPH_REDIS_PORT", "56379"), "CRAWLGRAPH_REDIS_PORT", 1, 65535
        )
        scrapyd_port = _int(
            env.get("CRAWLGRAPH_SCRAPYD_PORT", "56800"), "CRAWLGRAPH_SCRAPYD_PORT", 1, 65535
        )
        api_port = _int(env.get("CRAWLGRAPH_API_PORT", "8800"), "CRAWLGRAPH_API_PORT", 1, 65535)

        database_url = env.get("DATABASE_URL", "").strip()
        redis_url = env.get("REDIS_URL", "").strip()
        scrapyd_urls = tuple(_list(env.get("SCRAPYD_URLS", "")))
        for url in scrapyd_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"SCRAPYD_URLS has {url!r}, which is not an http(s) URL.",
                    hint="Give comma-separated URLs such as http://user:pass@node1:6800.",
                )
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://.")
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("DATABASE_URL must start with postgresql://.")

        def secret(key: str) -> str:
            return quote(creds.get(key, ""), safe="")

        if not database_url:
            database_url = (
                f"postgresql://crawlgraph:{secret('postgres_password')}"
                f"@127.0.0.1:{pg_port}/crawlgraph"
            )
        if not redis_url:
            redis_url = f"redis://:{secret('redis_password')}@127.0.0.1:{redis_port}/0"
        embedded_scrapyd = not scrapyd_urls
        if embedded_scrapyd:
            scrapyd_urls = (
                f"http://{secret('scrapyd_username')}:{secret('scrapyd_password')}"
                f"@127.0.0.1:{scrapyd_port}",
            )
        return cls(
            home=home,
            database_url=database_url,
            redis_url=redis_url,
            scrapyd_urls=scrapyd_urls,
            embedded_postgres=not env.get("DATABASE_URL", "").strip(),
            embedded_redis=not env.get("REDIS_URL", "").strip(),
            embedded_scrapyd=embedded_scrapyd,
            pg_port=pg_port,
            redis_port=redis_port,
            scrapyd_port=scrapyd_port,
            api_host=env.get("CRAWLGRAPH_API_HOST", "127.0.0.1"),
            api_port=api_port,
            api_workers=_int(env.get("CRAWLGRAPH_API_WORKERS", "1"), "CRAWLGRAPH_API_WORKERS",
                             1, 64),
            allow_private_networks=_bool(
                env.get("ALLOW_PRIVATE_NETWORKS", "0"), "ALLOW_PRIVATE_NETWORKS"
            ),
            jwt_secret=env.get("CRAWLGRAPH_JWT_SECRET") or creds.get("jwt_secret") or None,
            jwt_issuer=env.get("CRAWLGRAPH_JWT_ISSUER", "crawlgraph"),
            jwt_audience=env.get("CRAWLGRAPH_JWT_AUDIENCE", "crawlgraph-api"),
            token_ttl_seconds=_int(
                env.get("CRAWLGRAPH_TOKEN_TTL", "3600"), "CRAWLGRAPH_TOKEN_TTL", 60, 86400 * 7
            ),
            cors_origins=tuple(_list(env.get("CRAWLGRAPH_CORS_ORIGINS", ""))),
            trusted_proxies=tuple(_list(env.get("CRAWLGRAPH_TRUSTED_PROXIES", ""))),
            graph_workers=_int(
                env.get("CRAWLGRAPH_GRAPH_WORKERS", "1"), "CRAWLGRAPH_GRAPH_WORKERS", 0, 32
            ),
            log_level=env.get("CRAWLGRAPH_LOG_LEVEL", "INFO").upper(),
            username=env.get("CRAWLGRAPH_USERNAME") or None,
            password=env.get("CRAWLGRAPH_PASSWORD") or None,
        )

    def service_env(self) -> dict[str, str]:
        """The environment that crawler processes and workers inherit from the stack."""
        return {
            "CRAWLGRAPH_HOME": str(self.home),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "ALLOW_PRIVATE_NETWORKS": "1" if self.allow_private_networks else "0",
        }
