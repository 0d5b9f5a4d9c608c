"""`POST /api/v1/auth/token` and `GET /api/v1/auth/me`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Controller, Request, get, post
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

from core.settings import Settings
from jobapi.auth import CurrentUser
from jobapi.controllers import AppSettings, Limiter, Limits, client_address, errors
from jobapi.errors import (
    BadRequest,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    field_from_message,
)
from jobapi.ratelimit import RateLimiter, RateLimits
from jobapi.schemas import TokenRequest, TokenResponse, User
from jobapi.users import authenticate, get_user

log = logging.getLogger("jobapi.auth")

_CREDENTIALS = {
    "username": Schema(type=OpenAPIType.STRING, min_length=1, max_length=64,
                       pattern=r"^[A-Za-z0-9_.@-]+$", examples=["admin"]),
    "password": Schema(type=OpenAPIType.STRING, min_length=1, max_length=1024,
                       examples=["correct horse battery staple"]),
}


@dataclass
class _TokenOperation(Operation):
    """The token route reads JSON or an OAuth2 password form: document both bodies."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The username and password, as JSON or as a form.",
            content={
                "application/json": OpenAPIMediaType(schema=Schema(
                    type=OpenAPIType.OBJECT, required=["username", "password"],
                    properties=_CREDENTIALS, additional_properties=False,
                ), examples={"login": Example(summary="Log in", value={
                    "username": "admin", "password": "correct horse battery staple"})}),
                "application/x-www-form-urlencoded": OpenAPIMediaType(schema=Schema(
                    type=OpenAPIType.OBJECT, required=["username", "password"],
                    properties=_CREDENTIALS,
                ), examples={"login": Example(summary="Log in (OAuth2 password form)", value={
                    "username": "admin", "password": "correct horse battery staple"})}),
            },
        )


async def read_credentials(request: Request) -> TokenRequest:
    """The username and password of a JSON body or an OAuth2 password form."""
    body = await request.body()
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media == "application/x-www-form-urlencoded":
            fields = dict(parse_qsl(body.decode("utf-8", "strict"), keep_blank_values=True))
            data: Any = {k: fields[k] for k in ("username", "password") if k in fields}
            return msgspec.convert(data, TokenRequest)
        if media in ("application/json", ""):
            return msgspec.json.decode(body, type=TokenRequest)
    except UnicodeDecodeError:
        raise BadRequest("The form is not UTF-8.") from None
    except msgspec.ValidationError as exc:
        raise Unprocessable(f"The credentials are not valid: {exc}.",
                            field=field_from_message(str(exc))) from None
    except msgspec.DecodeError:
        raise BadRequest("The body is not valid JSON.",
                         hint='Send {"username": ..., "password": ...}.') from None
    raise BadRequest(
        f"Cannot read a {media} body.",
        hint="Send JSON or application/x-www-form-urlencoded.",
    )


async def check_login(request: Request, creds: TokenRequest, app_settings: Settings,
                      limiter: RateLimiter, rate_limits: RateLimits, *,
                      via: str = "") -> tuple[int, str]:
    """A login attempt, rate limited per address and per username: (user id, username).

    Every route that takes a password logs in here (`via` names it in the failure log).
    """
    address = client_address(request, app_settings.trusted_proxies)
    try:
        await limiter.hit("login-address", address, rate_limits.login_per_address,
                          what="login attempts from this address")
        await limiter.hit("login-user", creds.username.lower(),
                          rate_limits.login_per_username,
                          what="login attempts for this username")
        return await authenticate(request.app.state.pool, creds.username, creds.password)
    except (Unauthorized, TooManyRequests) as exc:
        log.warning("failed %slogin for %r from %s: %s", via, creds.username, address,
                    exc.message)
        raise


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post("/token", operation_id="createToken", status_code=200,
          opt={"exclude_from_auth": True}, operation_class=_TokenOperation,
          responses=errors(429, 503))
    async def create_token(
        self, request: Request, app_settings: AppSettings, limiter: Limiter,
        rate_limits: Limits,
    ) -> TokenResponse:
        """Exchange a username and password for an access token.

        Send JSON `{"username": "...", "password": "..."}` or an OAuth2 password form.
        Attempts are rate limited per username and per client address (429 with
        `Retry-After`). The token goes in `Authorization: Bearer <token>`.
        """
        creds = await read_credentials(request)
        user_id, username = await check_login(request, creds, app_settings, limiter,
                                              rate_limits)
        token = request.app.state.tokens.issue(user_id, username)
        log.info("token issued to %s", username)
        return TokenResponse(access_token=token, expires_in=app_settings.token_ttl_seconds)

    @get("/me", operation_id="getCurrentUser", responses=errors())
    async def me(self, request: Request[CurrentUser, Any, Any]) -> User:
        """The user the access token belongs to."""
        return await get_user(request.app.state.pool, request.user.id)
