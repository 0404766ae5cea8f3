"""Queries over tenants."""

from __future__ import annotations

from sqlalchemy import select

from shared.db.unit_of_work import TenantUnitOfWork
from shared.identity.orm import Tenant


def get_current_tenant(uow: TenantUnitOfWork) -> Tenant | None:
    # tenants is keyed on id (RLS too), so it is scoped by hand rather than through uow.scoped().
    return uow.session.scalars(select(Tenant).where(Tenant.id == uow.tenant_id)).one_or_none()
