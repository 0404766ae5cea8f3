"""The unit of work's driver-connection statements: same transaction, same tenant, and the
session's exception classes."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError

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
