"""Validation of a job submission beyond its schema: settings, patterns, start URL hosts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jobapi.errors import Unprocessable
from jobapi.schemas import JobCreate

# name -> (type, low, high) for numbers, (str, max length) for strings.
ALLOWED_SETTINGS: dict[str, tuple[type, Any, Any]] = {
    "DOWNLOAD_DELAY": (float, 0.0, 60.0),
    "DOWNLOAD_TIMEOUT": (float, 1.0, 300.0),
    "CONCURRENT_REQUESTS": (int, 1, 256),
    "CONCURRENT_REQUESTS_PER_DOMAIN": (int, 1, 64),
    "AUTOTHROTTLE_ENABLED": (bool, None, None),
    "AUTOTHROTTLE_TARGET_CONCURRENCY": (float, 0.1, 64.0),
    "AUTOTHROTTLE_MAX_DELAY": (float, 0.0, 300.0),
    "RETRY_ENABLED": (bool, None, None),
    "RETRY_TIMES": (int, 0, 10),
    "REDIRECT_MAX_TIMES": (int, 0, 50),
    "DEPTH_PRIORITY": (int, -10, 10),
    "DOWNLOAD_MAXSIZE": (int, 1024, 1024**3),
    "CLOSESPIDER_TIMEOUT": (int, 0, 7 * 86400),
    "CLOSESPIDER_ERRORCOUNT": (int, 0, 10_000_000),
    "USER_AGENT": (str, 1, 512),
    "LOG_LEVEL": (str, 1, 16),
}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def check_settings(overrides: Mapping[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        field = f"settings.{name}"
        rule = ALLOWED_SETTINGS.get(name)
        if rule is None:
            raise Unprocessable(
                f"{field}: {name!r} is not a setting a job may override.",
                field=field, hint="Allowed: " + ", ".join(sorted(ALLOWED_SETTINGS)) + ".",
            )
        kind, low, high = rule
        if kind is bool:
            if not isinstance(value, bool):
                raise Unprocessable(f"{field} must be true or false.", field=field)
        elif kind is str:
            if not isinstance(value, str) or not low <= len(value) <= high or any(
                ord(c) < 32 for c in value
            ):
                raise Unprocessable(f"{field} must be a string of {low} to {high} printable "
                                    "characters.", field=field)
            if name == "LOG_LEVEL" and value.upper() not in _LOG_LEVELS:
                raise Unprocessable(f"{field} must be one of {sorted(_LOG_LEVELS)}.", field=field)
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind is int and not isinstance(value, int)
            ) or not low <= value <= high:
                raise Unprocessable(
                    f"{field} must be {'an integer' if kind is int else 'a number'} from {low} "
                    f"to {high}.", field=field,
                )
        checked[name] = value
    return checked


def check_patterns(body: JobCreate) -> None:
    for name in ("include", "exclude"):
        for i, pattern in enumerate(getattr(body, name)):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise Unprocessable(f"{name}[{i}] is not a regular expression: {exc}.",
                                    field=f"{name}[{i}]") from None


def url_hosts(body: JobCreate) -> list[tuple[str, str, str, int]]:
    hosts = []
    for i, url in enumerate(body.start_urls):
        field = f"start_urls[{i}]"
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError:
            raise Unprocessable(f"{field} is not a valid URL: {url[:200]}", field=field,
                                hint="Give an absolute http or https URL.") from None
        if not parts.hostname:
            raise Unprocessable(f"{field} has no host: {url[:200]}", field=field,
                                hint="Give an absolute http or https URL.")
        hosts.append((field, url, parts.hostname, port))
    return hosts
