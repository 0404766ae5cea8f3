"""Queries over companies and prospects."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from shared.db.unit_of_work import TenantUnitOfWork
from shared.prospects.orm import Prospect

# Bulk inserts send one array per column and unnest them server-side: a short statement
# whatever the batch size, where a multi-row VALUES list is parsed anew (client and server)
# for every batch. COPY, the fastest path, is refused on tables under row-level security.
_INSERT_COMPANIES = text(
    """
    INSERT INTO companies (id, tenant_id, domain, name, industry, region, enrichment)
    SELECT gen_random_uuid(), :tenant_id, d, n, i, r, '{}'::jsonb
    FROM unnest(CAST(:domains AS text[]), CAST(:names AS text[]), CAST(:industries AS text[]),
                CAST(:regions AS text[])) AS t(d, n, i, r)
    ON CONFLICT (tenant_id, domain) DO NOTHING
    RETURNING domain
    """
)
_COMPANY_IDS = text(
    "SELECT domain, id FROM companies WHERE tenant_id = :tenant_id "
    "AND domain = ANY(CAST(:domains AS text[]))"
)
_INSERT_PROSPECTS = text(
    """
    INSERT INTO prospects (id, tenant_id, email, first_name, last_name, title, company_id,
                           source, time_zone, status, enrichment)
    SELECT gen_random_uuid(), :tenant_id, e, f, l, t, c, :source, z, s, CAST(x AS jsonb)
    FROM unnest(CAST(:emails AS text[]), CAST(:first_names AS text[]),
                CAST(:last_names AS text[]), CAST(:titles AS text[]),
                CAST(:company_ids AS uuid[]), CAST(:time_zones AS text[]),
                CAST(:statuses AS text[]), CAST(:enrichments AS text[]))
         AS t(e, f, l, t, c, z, s, x)
    ON CONFLICT (tenant_id, email) DO NOTHING
    RETURNING email
    """
)


def insert_companies(uow: TenantUnitOfWork, rows: Sequence[dict[str, Any]]) -> int:
    """Companies by domain; existing domains are left as they are. Returns how many are new."""
    if not rows:
        return 0
    created = uow.execute(
        _INSERT_COMPANIES,
        {
            "tenant_id": uow.tenant_id,
            "domains": [row["domain"] for row in rows],
            "names": [row.get("name") for row in rows],
            "industries": [row.get("industry") for row in rows],
            "regions": [row.get("region") for row in rows],
        },
    )
    return len(created.all())


def company_ids_by_domain(uow: TenantUnitOfWork, domains: Sequence[str]) -> dict[str, uuid.UUID]:
    rows = uow.execute(_COMPANY_IDS, {"tenant_id": uow.tenant_id, "domains": list(domains)})
    return {str(domain): uuid.UUID(str(company_id)) for domain, company_id in rows}


def insert_prospects(
    uow: TenantUnitOfWork, rows: Sequence[dict[str, Any]], *, source: str
) -> set[str]:
    """Prospects by address; existing addresses are left as they are. Returns the new ones."""
    if not rows:
        return set()
    inserted = uow.execute(
        _INSERT_PROSPECTS,
        {
            "tenant_id": uow.tenant_id,
            "source": source,
            "emails": [row["email"] for row in rows],
            "first_names": [row.get("first_name") for row in rows],
            "last_names": [row.get("last_name") for row in rows],
            "titles": [row.get("title") for row in rows],
            "company_ids": [row.get("company_id") for row in rows],
            "time_zones": [row.get("time_zone") for row in rows],
            "statuses": [row.get("status", "active") for row in rows],
            "enrichments": [json.dumps(row.get("enrichment") or {}) for row in rows],
        },
    )
    return set(inserted.scalars())


def list_prospects(
    uow: TenantUnitOfWork, *, after_id: uuid.UUID | None, limit: int, status: str | None
) -> Sequence[Prospect]:
    statement = uow.scoped(Prospect).order_by(Prospect.id).limit(limit)
    if after_id is not None:
        statement = statement.where(Prospect.id > after_id)
    if status is not None:
        statement = statement.where(Prospect.status == status)
    return uow.session.scalars(statement).all()
