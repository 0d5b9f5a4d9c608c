"""The job API: `create_app(settings)` builds the Litestar application."""

from __future__ import annotations

from litestar import Litestar, get

from jobapi.settings import Settings


@get("/health", tags=["service"], operation_id="health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Report that the API process is up."""
    return {"status": "ok"}


def create_app(settings: Settings) -> Litestar:
    """Build the API for these settings."""
    app = Litestar(route_handlers=[health])
    app.state.settings = settings
    return app


def app_from_env() -> Litestar:
    """Factory for uvicorn (`--factory jobapi.app:app_from_env`): settings from the environment."""
    return create_app(Settings.from_env())
