"""Queries over companies and prospects."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shared.db.unit_of_work import TenantUnitOfWork
from shared.prospects.orm import Company, Prospect


def insert_companies(uow: TenantUnitOfWork, rows: Sequence[dict[str, Any]]) -> int:
    """Companies by domain; existing domains are left as they are. Returns how many are new."""
    if not rows:
        return 0
    statement = (
        insert(Company)
        .on_conflict_do_nothing(index_elements=[Company.tenant_id, Company.domain])
        .returning(Company.id)
    )
    # A list of parameter sets: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues").
    parameters = [{**row, "tenant_id": uow.tenant_id, "id": uuid.uuid4()} for row in rows]
    return len(uow.execute(statement, parameters).all())


def company_ids_by_domain(uow: TenantUnitOfWork, domains: Sequence[str]) -> dict[str, uuid.UUID]:
    rows = uow.execute(
        select(Company.domain, Company.id).where(
            Company.tenant_id == uow.tenant_id, Company.domain.in_(list(domains))
        )
    ).all()
    return dict(rows)


def insert_prospects(uow: TenantUnitOfWork, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Prospects by address; existing addresses are left as they are. Returns the new ones."""
    if not rows:
        return set()
    statement = (
        insert(Prospect)
        .on_conflict_do_nothing(index_elements=[Prospect.tenant_id, Prospect.email])
        .returning(Prospect.email)
    )
    parameters = [{**row, "tenant_id": uow.tenant_id, "id": uuid.uuid4()} for row in rows]
    return set(uow.execute(statement, parameters).scalars())


def list_prospects(
    uow: TenantUnitOfWork, *, after_id: uuid.UUID | None, limit: int, status: str | None
) -> Sequence[Prospect]:
    statement = uow.scoped(Prospect).order_by(Prospect.id).limit(limit)
    if after_id is not None:
        statement = statement.where(Prospect.id > after_id)
    if status is not None:
        statement = statement.where(Prospect.status == status)
    return uow.session.scalars(statement).all()
