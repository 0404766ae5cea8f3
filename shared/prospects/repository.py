"""Queries over companies and prospects."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text

from shared.db.unit_of_work import TenantUnitOfWork
from shared.prospects.model import ProspectRow
from shared.prospects.orm import Prospect

# A batch travels as one JSON document (arrays of positional values) and is unpacked
# server-side: json.dumps is a single C call where per-element array adaptation cost more
# than the insert itself, and the statement text stays the same whatever the batch size.
# COPY, the fastest path, is refused on tables under row-level security, and the app role
# may not create temporary staging tables.
_INSERT_COMPANIES = text(
    """
    WITH created AS (
        INSERT INTO companies (id, tenant_id, domain, name, industry, region, enrichment)
        SELECT gen_random_uuid(), :tenant_id, r->>0, r->>1, r->>2, r->>3, '{}'::jsonb
        FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r
        ON CONFLICT (tenant_id, domain) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM created
    """
)
# Companies are joined by domain in a statement after their insert: it sees companies another
# import committed while ours waited on their conflict, which the inserting statement's
# snapshot would not.
_INSERT_PROSPECTS = text(
    """
    WITH inserted AS (
        INSERT INTO prospects (id, tenant_id, email, first_name, last_name, title, company_id,
                               source, time_zone, status, enrichment)
        SELECT gen_random_uuid(), :tenant_id, r->>0, r->>1, r->>2, r->>3, c.id, :source,
               r->>5, r->>6, r->7
        FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r
        LEFT JOIN companies AS c ON c.tenant_id = :tenant_id AND c.domain = r->>4
        ON CONFLICT (tenant_id, email) DO NOTHING
        RETURNING status
    )
    SELECT count(*), count(*) FILTER (WHERE status = 'suppressed') FROM inserted
    """
)


@dataclass(frozen=True)
class InsertedProspects:
    inserted: int
    suppressed: int


def insert_companies(uow: TenantUnitOfWork, rows: Iterable[ProspectRow]) -> int:
    """The companies these rows name, one per row (distinct domains); existing domains are
    left as they are. Returns how many are new."""
    document = json.dumps([[r.company_domain, r.company_name, r.industry, r.region] for r in rows])
    if document == "[]":
        return 0
    created = uow.execute(_INSERT_COMPANIES, {"tenant_id": uow.tenant_id, "rows": document})
    return int(created.scalar_one())


def insert_prospects(
    uow: TenantUnitOfWork,
    rows: Sequence[ProspectRow],
    *,
    suppressed: Collection[str],
    source: str,
) -> InsertedProspects:
    """Prospects by address, linked to their company by domain (insert companies first);
    existing addresses are left as they are. Addresses in `suppressed` are stored with
    status `suppressed`."""
    if not rows:
        return InsertedProspects(0, 0)
    document = json.dumps(
        [
            [
                r.email,
                r.first_name,
                r.last_name,
                r.title,
                r.company_domain,
                r.time_zone,
                "suppressed" if r.email in suppressed else "active",
                r.enrichment,
            ]
            for r in rows
        ]
    )
    counted = uow.execute(
        _INSERT_PROSPECTS, {"tenant_id": uow.tenant_id, "source": source, "rows": document}
    ).one()
    return InsertedProspects(inserted=int(counted[0]), suppressed=int(counted[1]))


def list_prospects(
    uow: TenantUnitOfWork, *, after_id: uuid.UUID | None, limit: int, status: str | None
) -> Sequence[Prospect]:
    statement = uow.scoped(Prospect).order_by(Prospect.id).limit(limit)
    if after_id is not None:
        statement = statement.where(Prospect.id > after_id)
    if status is not None:
        statement = statement.where(Prospect.status == status)
    return uow.session.scalars(statement).all()
