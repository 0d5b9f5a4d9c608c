"""`/api/v1/users`: admins create, list, change and disable users."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, FromPath

from jobapi import users as service
from jobapi.auth import CurrentUser, require_admin
from jobapi.controllers import Pool, errors
from jobapi.errors import Conflict
from jobapi.schemas import User, UserCreate, UserList, UserUpdate

log = logging.getLogger("jobapi.users")


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]

    @post("/", operation_id="createUser", status_code=201, responses=errors(403, 409))
    async def create_user(
        self, request: Request[CurrentUser, Any, Any],
        data: Annotated[UserCreate, BodyKwarg(examples=[Example(
            summary="A user", value={"username": "alice", "password": "a long passphrase",
                                     "role": "user"})])],
        pool: Pool,
    ) -> User:
        """Create a user (admin only). Passwords are 8 characters to 72 bytes."""
        require_admin(request.user)
        user = await service.create_user(pool, data)
        log.info("user %s (%s) created by %s", user.username, user.role, request.user.username)
        return user

    @get("/", operation_id="listUsers", responses=errors(403))
    async def list_users(self, request: Request[CurrentUser, Any, Any],
                   pool: Pool) -> UserList:
        """All users (admin only)."""
        require_admin(request.user)
        return UserList(items=await service.list_users(pool))

    @patch("/{user_id:int}", operation_id="updateUser", responses=errors(403, 404, 409))
    async def update_user(
        self, request: Request[CurrentUser, Any, Any], user_id: FromPath[int],
        data: Annotated[UserUpdate, BodyKwarg(examples=[Example(
            summary="Disable", value={"disabled": True})])],
        pool: Pool,
    ) -> User:
        """Change a user's password or role, or disable or enable them (admin only).

        A disabled user's tokens stop working within seconds.
        """
        require_admin(request.user)
        if user_id == request.user.id and (data.disabled or data.role == "user"):
            raise Conflict("An administrator cannot disable or demote their own account.",
                           hint="Ask another administrator.")
        user = await service.update_user(pool, user_id, data)
        request.app.state.user_cache.forget(user_id)
        log.info("user %s updated by %s", user.username, request.user.username)
        return user
