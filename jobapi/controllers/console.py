"""The console: the web UI at `/`, its files under `/console/`, and its session.

The built files come from `console/dist/` (`make console` builds them; they are
committed, so a machine without npm serves them too). They are read once, when
the app is made, and only those names are served: no path from a request ever
reaches the file system.

The session: `POST /console/session` takes a username and password as JSON (a
cross-site form cannot send JSON without a preflight, so no login CSRF), is
rate limited like `POST /api/v1/auth/token`, and sets the same access token in
an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS); its answer
carries the CSRF token the console sends on every state-changing request
(`jobapi.auth`). `GET /console/session` says who is logged in (and the CSRF
token again, for a reloaded page); `DELETE /console/session` logs out.

Every console answer carries a strict Content-Security-Policy (scripts and
workers from this origin only, no inline script, no framing) and
`X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath

from jobapi.auth import SESSION_COOKIE, CurrentUser
from jobapi.controllers import AppSettings, Limiter, Limits
from jobapi.controllers.auth import check_login, read_credentials
from jobapi.errors import BadRequest, NotFound, ServiceUnavailable
from jobapi.schemas import TokenRequest
from jobapi.users import get_user

log = logging.getLogger("jobapi.console")

DIST = Path(__file__).resolve().parents[2] / "console" / "dist"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8",
               ".map": "application/json"}
CSP = ("default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
       "style-src 'self'; img-src 'self' data: blob:; font-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_PUBLIC = {"exclude_from_auth": True}


class Session(msgspec.Struct, kw_only=True):
    """Who is logged in to the console, and the CSRF token of the session."""

    id: int
    username: str
    role: str
    csrf_token: str
    expires_in: int


def _load(dist: Path) -> dict[str, bytes]:
    if not dist.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(dist.iterdir())
            if p.is_file() and p.suffix in MEDIA_TYPES}


_FILES = _load(DIST)


def _file(name: str) -> Response[bytes]:
    body = _FILES.get(name)
    if body is None:
        if not _FILES:
            raise ServiceUnavailable("The console is not built.",
                                     hint="Run `make console` (needs npm), or check out "
                                          "console/dist/ from the repository.")
        raise NotFound(f"The console has no file {name!r}.", hint="Open / instead.")
    return Response(body, media_type=MEDIA_TYPES[Path(name).suffix],
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _cookie(request: Request, value: str, max_age: int) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=value, max_age=max_age, path="/", httponly=True,
                  samesite="strict", secure=_secure(request))


async def _credentials(request: Request) -> TokenRequest:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise BadRequest("The console logs in with JSON only.",
                         hint='Send {"username": ..., "password": ...} as application/json.')
    return await read_credentials(request)


class ConsoleController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", opt=_PUBLIC, media_type="text/html")
    async def index(self) -> Response[bytes]:
        """The console's page."""
        return _file("index.html")

    @get("/console/{name:str}", opt=_PUBLIC)
    async def asset(self, name: FromPath[str]) -> Response[bytes]:
        """One of the console's built files (scripts, styles, the licence list)."""
        return _file(name)

    @post("/console/session", opt=_PUBLIC, status_code=200)
    async def login(self, request: Request, app_settings: AppSettings, limiter: Limiter,
                    rate_limits: Limits) -> Response[Session]:
        """Log in: the access token in an HttpOnly cookie, the CSRF token in the answer."""
        creds = await _credentials(request)
        user_id, _ = await check_login(request, creds, app_settings, limiter, rate_limits,
                                       via="console ")
        tokens = request.app.state.tokens
        user = await get_user(request.app.state.pool, user_id)
        token = tokens.issue(user.id, user.username)
        log.info("console session opened for %s", user.username)
        session = Session(id=user.id, username=user.username, role=user.role,
                          csrf_token=tokens.csrf_token(tokens.decode(token)),
                          expires_in=app_settings.token_ttl_seconds)
        return Response(session, headers=SECURITY_HEADERS,
                        cookies=[_cookie(request, token, app_settings.token_ttl_seconds)])

    @get("/console/session")
    async def session(self, request: Request[CurrentUser, Any, Any]) -> Response[Session]:
        """The logged-in user and the session's CSRF token."""
        claims = request.auth
        tokens = request.app.state.tokens
        user = request.user
        left = max(0, int(claims["exp"]) - int(claims["iat"]))
        return Response(Session(id=user.id, username=user.username, role=user.role,
                                csrf_token=tokens.csrf_token(claims), expires_in=left),
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    @delete("/console/session", status_code=200)
    async def logout(self, request: Request[CurrentUser, Any, Any]) -> Response[dict[str, str]]:
        """Log out: the cookie is cleared."""
        log.info("console session closed for %s", request.user.username)
        return Response({"status": "logged out"}, headers=SECURITY_HEADERS,
                        cookies=[_cookie(request, "", 0)])
