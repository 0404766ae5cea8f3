"""The unit of work's driver-connection statements: same transaction, same tenant, and the
session's exception classes."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.pool import NullPool

from shared.db import engine
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity.schemas import TenantRead

_SETTING = text("SELECT current_setting('app.tenant_id'), txid_current_if_assigned() IS NULL")


def test_driver_statements_run_in_the_tenant_transaction(tenant: TenantRead) -> None:
    with tenant_unit_of_work(tenant.id) as uow:
        assert uow.fetch_one(_SETTING, {}) == (str(tenant.id), True)
        session_txid = uow.execute(text("SELECT txid_current()")).scalar_one()
        assert uow.fetch_all(text("SELECT txid_current()"), {}) == [(session_txid,)]
    with tenant_unit_of_work(tenant.id) as uow:
        assert uow.fetch_one(text("SELECT txid_current() <> :previous"), {"previous": 0}) == (True,)


def test_driver_errors_are_the_sessions_exceptions(tenant: TenantRead) -> None:
    with pytest.raises(DataError), tenant_unit_of_work(tenant.id) as uow:
        uow.fetch_one(text("SELECT 1 / :zero"), {"zero": 0})
    with tenant_unit_of_work(tenant.id) as uow:  # the pool's connection is usable again
        assert uow.fetch_one(_SETTING, {}) == (str(tenant.id), True)


def _kill_the_pooled_connection(tenant: TenantRead) -> None:
    """Leave one connection in the pool, used a moment ago, and end its server session (as a
    server restart or failover would), from a connection outside the pool."""
    engine.app_engine().dispose()
    with tenant_unit_of_work(tenant.id) as uow:
        uow.fetch_one(_SETTING, {})
    outside = create_engine(engine.app_engine().url, poolclass=NullPool)
    try:
        with outside.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND usename = current_user "
                    "AND pid <> pg_backend_pid()"
                )
            )
    finally:
        outside.dispose()


def _outcomes(tenant: TenantRead, attempts: int = 3) -> list[str]:
    outcomes = []
    for _ in range(attempts):
        try:
            with tenant_unit_of_work(tenant.id) as uow:
                assert uow.fetch_one(_SETTING, {}) == (str(tenant.id), True)
            outcomes.append("ok")
        except OperationalError as exc:
            outcomes.append("invalidated" if exc.connection_invalidated else "error")
    return outcomes


def test_a_connection_idle_long_enough_is_pinged_and_replaced(
    tenant: TenantRead, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_the_pooled_connection(tenant)
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_S", 0.0)
    assert _outcomes(tenant) == ["ok", "ok", "ok"]


def test_a_connection_that_died_within_the_ping_interval_fails_one_transaction(
    tenant: TenantRead,
) -> None:
    _kill_the_pooled_connection(tenant)
    # Not pinged (used a moment ago): its first statement finds it dead, the driver error is
    # the session's disconnect error, and the next unit of work gets a new connection.
    assert _outcomes(tenant) == ["invalidated", "ok", "ok"]
