"""Use cases: importing, listing and editing prospects."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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


@dataclass
class _Totals:
    imported: int = 0
    already_present: int = 0
    suppressed: int = 0
    companies_created: int = 0


def _batches(
    rows: Iterator[tuple[int, dict[str, str]]], size: int
) -> Iterator[list[tuple[int, dict[str, str]]]]:
    while batch := list(islice(rows, size)):
        yield batch


def _write_batch(
    uow: TenantUnitOfWork,
    good: list[ProspectRow],
    companies: dict[str, ProspectRow],
    *,
    source: str,
    suppressed: SuppressionLookup,
    totals: _Totals,
) -> None:
    blocked = suppressed(uow, [row.email for row in good])
    totals.companies_created += repository.insert_companies(uow, companies.values())
    inserted = repository.insert_prospects(uow, good, suppressed=blocked, source=source)
    totals.imported += inserted.inserted
    totals.already_present += len(good) - inserted.inserted
    totals.suppressed += inserted.suppressed


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

    Each batch is written by one worker thread while this one reads and validates the next:
    the database's work and the parsing overlap instead of taking turns. Only one thread uses
    the unit of work at a time (the next batch is handed over after the previous write
    returned), and none is left writing when this returns or raises.
    """
    first_line: dict[str, int] = {}
    errors: list[ImportRowError] = []
    rows = 0
    totals = _Totals()
    # Domains an earlier batch of this file already sent: each company is written once.
    known_domains: set[str] = set()
    # Leaving the executor waits for the write in flight, also on an error (then before the
    # caller rolls back).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prospect-import") as writer:
        pending: Future[None] | None = None
        for batch in _batches(stream.rows(), BATCH_ROWS):
            good: list[ProspectRow] = []
            companies: dict[str, ProspectRow] = {}
            for line, values in batch:
                rows += 1
                extra = values.pop("__extra__", None)
                if extra is not None:
                    errors.append(
                        ImportRowError(
                            line=line,
                            email=values.get("email", "").strip() or None,
                            reason=f"{extra} more field(s) than the header",
                        )
                    )
                    continue
                try:
                    row = parse_row(values)
                except ValueError as exc:
                    raw_email = values.get("email", "").strip() or None
                    errors.append(ImportRowError(line=line, email=raw_email, reason=str(exc)))
                    continue
                seen = first_line.setdefault(row.email, line)
                if seen != line:
                    errors.append(
                        ImportRowError(
                            line=line, email=row.email, reason=f"duplicate of line {seen}"
                        )
                    )
                    continue
                good.append(row)
                # A new company takes its details from the batch's last row naming its domain.
                companies[row.company_domain] = row
            for domain in known_domains.intersection(companies):
                del companies[domain]
            known_domains.update(companies)
            if pending is not None:
                pending.result()
                pending = None
            if good:
                # In the caller's context: log lines keep its request and tenant ids.
                pending = writer.submit(
                    contextvars.copy_context().run,
                    _write_batch,
                    uow,
                    good,
                    companies,
                    source=source,
                    suppressed=suppressed,
                    totals=totals,
                )
        if pending is not None:
            pending.result()
    report = ImportReport(
        rows=rows,
        imported=totals.imported,
        already_present=totals.already_present,
        suppressed=totals.suppressed,
        rejected=len(errors),
        companies_created=totals.companies_created,
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
