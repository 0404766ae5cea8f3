"""Use cases: importing, listing and editing prospects."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork
from shared.errors import NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.prospects import repository
from shared.prospects.csv_stream import CsvStream
from shared.prospects.model import ProspectRow, parse_row
from shared.prospects.orm import Prospect
from shared.prospects.schemas import (
    ImportReport,
    ImportRowError,
    ProspectPage,
    ProspectRead,
    ProspectUpdate,
)

BATCH_ROWS = 5000
# Which of these addresses (lowercase) may never be contacted: address or domain suppression.
SuppressionLookup = Callable[[TenantUnitOfWork, Sequence[str]], set[str]]


def _batches(
    rows: Iterator[tuple[int, dict[str, str]]], size: int
) -> Iterator[list[tuple[int, dict[str, str]]]]:
    while batch := list(islice(rows, size)):
        yield batch


def import_prospects(
    uow: TenantUnitOfWork,
    stream: CsvStream,
    *,
    source: str,
    actor: Actor,
    suppressed: SuppressionLookup,
) -> ImportReport:
    """Import every good row, report every bad one; the caller's transaction makes it atomic.

    Re-importing a file changes nothing: companies are matched by domain and prospects by
    address, and existing ones are left as they are.
    """
    first_line: dict[str, int] = {}
    errors: list[ImportRowError] = []
    rows = imported = already_present = suppressed_count = companies_created = 0
    for batch in _batches(stream.rows(), BATCH_ROWS):
        good: list[ProspectRow] = []
        for line, values in batch:
            rows += 1
            extra = values.pop("__extra__", None)
            raw_email = values.get("email", "").strip() or None
            if extra is not None:
                errors.append(
                    ImportRowError(
                        line=line, email=raw_email, reason=f"{extra} more field(s) than the header"
                    )
                )
                continue
            try:
                row = parse_row(values)
            except ValueError as exc:
                errors.append(ImportRowError(line=line, email=raw_email, reason=str(exc)))
                continue
            if row.email in first_line:
                errors.append(
                    ImportRowError(
                        line=line,
                        email=row.email,
                        reason=f"duplicate of line {first_line[row.email]}",
                    )
                )
                continue
            first_line[row.email] = line
            good.append(row)
        if not good:
            continue
        domains = {row.company_domain: row for row in good}
        companies_created += repository.insert_companies(
            uow,
            [
                {
                    "domain": domain,
                    "name": row.company_name,
                    "industry": row.industry,
                    "region": row.region,
                    "enrichment": {},
                }
                for domain, row in domains.items()
            ],
        )
        company_ids = repository.company_ids_by_domain(uow, list(domains))
        blocked = suppressed(uow, [row.email for row in good])
        inserted = repository.insert_prospects(
            uow,
            [
                {
                    "email": row.email,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "title": row.title,
                    "company_id": company_ids[row.company_domain],
                    "time_zone": row.time_zone,
                    "status": "suppressed" if row.email in blocked else "active",
                    "enrichment": row.enrichment,
                }
                for row in good
            ],
            source=source,
        )
        imported += len(inserted)
        already_present += len(good) - len(inserted)
        suppressed_count += len(inserted & blocked)
    report = ImportReport(
        rows=rows,
        imported=imported,
        already_present=already_present,
        suppressed=suppressed_count,
        rejected=len(errors),
        companies_created=companies_created,
        errors=errors,
        ignored_columns=stream.ignored_columns,
        sha256=stream.sha256.hexdigest(),
    )
    AuditChain.append(
        uow,
        AuditEventType.PROSPECTS_IMPORTED,
        actor,
        report.model_dump(mode="json", exclude={"errors"}) | {"source": source},
    )
    return report


def list_prospects(
    uow: TenantUnitOfWork, *, cursor: str | None, limit: int, status: str | None
) -> ProspectPage:
    after = decode_cursor(cursor) if cursor else None
    found = repository.list_prospects(uow, after_id=after, limit=limit + 1, status=status)
    page = [ProspectRead.model_validate(p) for p in found[:limit]]
    next_cursor = encode_cursor(page[-1].id) if len(found) > limit else None
    return ProspectPage(items=page, next_cursor=next_cursor)


def update_prospect(
    uow: TenantUnitOfWork, prospect_id: uuid.UUID, changes: ProspectUpdate, actor: Actor
) -> ProspectRead:
    prospect = uow.get(Prospect, prospect_id)
    if prospect is None:
        raise NotFound("Prospect not found.")
    updates: dict[str, Any] = changes.model_dump(exclude_unset=True)
    for name, value in updates.items():
        setattr(prospect, name, value)
    prospect.updated_at = datetime.now(UTC)
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.PROSPECT_UPDATED,
        actor,
        {"prospect_id": str(prospect.id), "fields": sorted(updates)},
    )
    return ProspectRead.model_validate(prospect)
