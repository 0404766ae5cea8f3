"""Test fixtures: a migrated PostgreSQL database per xdist worker (Polar's pattern)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.config import get_settings
from shared.db.engine import app_engine, reset_engines
from shared.db.migrate import upgrade_to_head
from shared.db.server import (
    DatabaseUrls,
    create_database,
    database_urls,
    drop_database,
    ensure_roles_and_database,
)
from shared.db.unit_of_work import TenantUnitOfWork
from shared.identity.schemas import TenantCreate, TenantRead
from shared.identity.service import provision_tenant


@pytest.fixture(scope="session")
def database(worker_id: str) -> Iterator[DatabaseUrls]:
    """A freshly created and migrated database for this xdist worker ("master" without -n)."""
    os.environ["ASEP_ENV"] = "test"
    # A suffix keeps concurrent suites (two checkouts, two people) out of each other's way.
    suffix = os.environ.get("ASEP_TEST_DB_SUFFIX", "")
    os.environ["ASEP_DATABASE_NAME"] = f"asep_test_{worker_id}{'_' + suffix if suffix else ''}"
    get_settings.cache_clear()
    settings = get_settings()
    urls = database_urls(settings)
    ensure_roles_and_database(urls.for_database("asep"), settings)
    if urls.admin is not None:
        drop_database(urls.admin, settings.database_name)
        create_database(
            urls.admin, settings.database_name, owner=settings.owner_role, app=settings.app_role
        )
    upgrade_to_head(urls.owner)
    reset_engines()
    yield urls
    reset_engines()


def make_tenant(label: str) -> TenantRead:
    slug = f"{label}-{uuid.uuid4().hex[:10]}"
    return provision_tenant(TenantCreate(slug=slug, name=f"Tenant {label}"))


@pytest.fixture
def tenant(database: DatabaseUrls) -> TenantRead:
    return make_tenant("t")


@pytest.fixture
def rollback_uow(database: DatabaseUrls, tenant: TenantRead) -> Iterator[TenantUnitOfWork]:
    """A tenant unit of work whose transaction is rolled back after the test."""
    with app_engine().connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        session.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.id)})
        try:
            yield TenantUnitOfWork(session, tenant.id)
        finally:
            session.close()
            transaction.rollback()
