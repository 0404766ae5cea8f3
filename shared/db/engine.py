"""Engines, built once per process. Only shared/db may create engines or sessions."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

from shared.config import get_settings
from shared.db.server import database_urls


def build_engine(
    url: URL, *, pool_size: int | None = None, application_name: str = "asep"
) -> Engine:
    settings = get_settings()
    return create_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={
            "application_name": application_name,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )


@lru_cache(maxsize=1)
def app_engine() -> Engine:
    """The engine every request and activity uses: the app role, subject to RLS."""
    return build_engine(database_urls().app)


def reset_engines() -> None:
    """Forget cached engines (tests that point the app at another database)."""
    if app_engine.cache_info().currsize:
        app_engine().dispose()
    app_engine.cache_clear()
