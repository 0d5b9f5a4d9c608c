"""Authentication of the job API: JWT bearer tokens over bcrypt passwords.

Tokens are HS256 only (the algorithm is pinned: `none` and every other
algorithm are refused), and `exp`, `iat`, `iss`, `aud` and `sub` are required
and checked. The secret is `CRAWLGRAPH_JWT_SECRET`, else the local stack's
`jwt_secret` in `credentials.json`, else one generated into the data directory
(`jwt_secret`, mode 0600); a configured secret shorter than 32 bytes is refused.

`JWTAuthMiddleware` authenticates every route except those whose handler has
`opt={"exclude_from_auth": True}` and the OpenAPI pages, and puts the user on
`request.user` as a `CurrentUser`. The role and the `disabled` flag are read
from the database and kept `USER_CACHE_SECONDS` (5 s) by each API process
(`UserCache`): disabling a user or changing their role takes effect at once in
the process that made the change, and within 5 s in every other process,
without waiting for their token to expire.

The console (`jobapi.controllers.console`) carries the same token in an
`HttpOnly`, `SameSite=Strict` cookie (`SESSION_COOKIE`) that no script can read.
A request with no `Authorization` header is authenticated by that cookie, and
then every state-changing request (POST, PUT, PATCH, DELETE) must also send
`X-CSRF-Token`: an HMAC of the token's `jti`, which the console gets when it
logs in (`TokenCodec.csrf_token`). A bearer token needs no CSRF token: a
browser never attaches one on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import msgspec
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from psycopg_pool import AsyncConnectionPool

from core.errors import ConfigError
from core.settings import Settings
from jobapi.errors import Forbidden, Unauthorized
from jobapi.sql import QUERIES

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
SECRET_FILE = "jwt_secret"
USER_CACHE_SECONDS = 5.0
LEEWAY_SECONDS = 5
VERIFIED_CACHE_SIZE = 10_000
SESSION_COOKIE = "crawlgraph_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = logging.getLogger("jobapi.auth")


class CurrentUser(msgspec.Struct, frozen=True):
    """The authenticated user of a request (`request.user`)."""

    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def load_secret(settings: Settings) -> bytes:
    """The signing secret: configured, or generated once into the data directory."""
    if settings.jwt_secret:
        secret = settings.jwt_secret.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"The JWT secret is {len(secret)} bytes long; at least {MIN_SECRET_BYTES} "
                "are needed.",
                hint="Set CRAWLGRAPH_JWT_SECRET to `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`.",
            )
        return secret
    path = Path(settings.home) / SECRET_FILE
    try:
        return path.read_text().strip().encode()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(MIN_SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker process won the race
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value.encode()


class TokenCodec:
    """Issues and checks the API's access tokens."""

    def __init__(self, secret: bytes, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(self, user_id: int, username: str, *, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": str(user_id),
            "name": username,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> dict[str, Any]:
        """The token's claims; Unauthorized for anything but a valid, current token.

        A token verified once is remembered (by its exact text) until it expires:
        the signature check and PyJWT's parsing are most of an authenticated
        request's cost, and a client sends the same token many times.
        """
        hit = self._verified.get(token)
        if hit is not None and hit["exp"] > time.time() - LEEWAY_SECONDS:
            return hit
        claims = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def csrf_token(self, claims: dict[str, Any]) -> str:
        """The CSRF token of a session: bound to its token's `jti`, useless without it."""
        message = f"csrf:{claims.get('jti', '')}:{claims['sub']}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized(
                "The access token has expired.", hint="Get a new one from POST /api/v1/auth/token."
            ) from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(
                f"The access token is not valid ({_reason(exc)}).",
                hint="Get a token from POST /api/v1/auth/token.",
            ) from None


def _reason(exc: jwt.InvalidTokenError) -> str:
    # PyJWT's messages name the failing check without echoing the token.
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return "malformed"


_USER_BY_ID = QUERIES["user_for_token"]


class UserCache:
    """A few seconds of memory of who is enabled, to keep a query off every request.

    An entry is used for `ttl` seconds from before the query that read it, so a
    change committed after that read is seen at most `ttl` seconds after it.
    """

    def __init__(self, ttl: float = USER_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[int, tuple[float, CurrentUser | None]] = {}

    async def get(self, pool: AsyncConnectionPool, user_id: int) -> CurrentUser | None:
        now = time.monotonic()
        hit = self._entries.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with pool.connection() as conn:
            row = await (await conn.execute(_USER_BY_ID, (user_id,))).fetchone()
        user = None
        if row is not None and not row[3]:
            user = CurrentUser(id=row[0], username=row[1], role=row[2])
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[user_id] = (now + self.ttl, user)
        return user

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)


def bearer_token(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "This route needs an access token.",
            hint="Send `Authorization: Bearer <token>`; get one from POST /api/v1/auth/token.",
        )
    return token.strip()


def _session_claims(connection: ASGIConnection, tokens: TokenCodec) -> dict[str, Any]:
    """The claims of the console's session cookie, the CSRF token checked where it must be."""
    claims = tokens.decode(connection.cookies[SESSION_COOKIE])
    if connection.scope.get("method", "GET") in UNSAFE_METHODS:
        sent = connection.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), tokens.csrf_token(claims).encode()):
            log.warning("denied %s %s: no valid CSRF token", connection.scope.get("method"),
                        connection.scope["path"])
            raise Forbidden("This request carries no valid CSRF token.",
                            hint="Send the X-CSRF-Token header the console got at login.")
    return claims


class JWTAuthMiddleware(AbstractAuthenticationMiddleware):
    """Puts the token's user on `request.user`, or answers 401."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        state = connection.app.state
        try:
            if "authorization" not in connection.headers and \
                    SESSION_COOKIE in connection.cookies:
                claims = _session_claims(connection, state.tokens)
            else:
                claims = state.tokens.decode(bearer_token(connection))
            try:
                user_id = int(claims["sub"])
            except (TypeError, ValueError):
                raise Unauthorized("The access token names no valid user.") from None
            user = await state.user_cache.get(state.pool, user_id)
            if user is None:
                raise Unauthorized(
                    "The token's user does not exist or is disabled.",
                    hint="Ask an administrator to enable the account.",
                )
        except Unauthorized as exc:
            log.warning(
                "denied %s %s: %s", connection.scope.get("method", ""),
                connection.scope["path"], exc.message,
            )
            raise
        return AuthenticationResult(user=user, auth=claims)


def require_admin(user: CurrentUser) -> None:
    if not user.is_admin:
        log.warning("denied user %s: admin role needed", user.username)
        raise Forbidden("This needs the admin role.", hint="Ask an administrator.")
