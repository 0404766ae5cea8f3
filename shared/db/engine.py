"""Engines, built once per process. Only shared/db may create engines or sessions."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DisconnectionError

from shared.config import get_settings
from shared.db.server import database_urls

# A connection checked out again within this many seconds of its last use is not pinged: a
# ping is a round trip on every transaction, and at hundreds of transactions a second the
# connection was in use a moment ago. A connection that died in that moment fails its
# statement like one dying mid-transaction does (the dialect sees the disconnect and the
# pool is invalidated), and the caller's retry gets a fresh one.
PING_AFTER_IDLE_S = 5.0
# Also bounds how long an idle-killing proxy or a failover can leave a dead socket pooled.
POOL_RECYCLE_S = 1800
_RELEASED_AT = "asep_released_at"


def _ping_idle_connections(engine: Engine) -> None:
    dialect = engine.dialect

    def released(dbapi_connection: Any, record: Any) -> None:
        record.info[_RELEASED_AT] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        last = record.info.get(_RELEASED_AT)
        if last is not None and time.monotonic() - last < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (pre_ping's contract).
            raise DisconnectionError(f"connection failed its ping: {exc}") from exc

    event.listen(engine, "connect", released)
    event.listen(engine, "checkin", released)
    event.listen(engine, "checkout", checkout)


def build_engine(
    url: URL, *, pool_size: int | None = None, application_name: str = "asep"
) -> Engine:
    settings = get_settings()
    engine = create_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_recycle=POOL_RECYCLE_S,
        connect_args={
            "application_name": application_name,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )
    _ping_idle_connections(engine)
    return engine


@lru_cache(maxsize=1)
def app_engine() -> Engine:
    """The engine every request and activity uses: the app role, subject to RLS."""
    return build_engine(database_urls().app)


def reset_engines() -> None:
    """Forget cached engines (tests that point the app at another database)."""
    if app_engine.cache_info().currsize:
        app_engine().dispose()
    app_engine.cache_clear()
