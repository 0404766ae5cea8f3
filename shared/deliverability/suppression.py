"""Do-not-contact: per-tenant suppression by address and by domain, effective on commit.

Audit events carry a SHA-256 of a suppressed address rather than the address itself: the
chain is append-only, and an erasure request must not leave personal data in it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Sequence
from typing import Any

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork
from shared.deliverability import repository
from shared.deliverability.model import (
    InvalidAddress,
    SuppressionKind,
    domain_and_parents,
    domain_of,
)
from shared.deliverability.orm import Suppression
from shared.deliverability.schemas import (
    ImportRowError,
    SuppressionCreate,
    SuppressionImportReport,
    SuppressionPage,
    SuppressionRead,
    SuppressionStatus,
)
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.pagination import decode_time_cursor, encode_time_cursor

IMPORT_MAX_ROWS = 50_000
VALUE_COLUMNS = ("value", "email", "address", "domain")


class SuppressionNotFound(NotFound):
    code = "suppression_not_found"
    title = "Suppression not found"


class AlreadySuppressed(Conflict):
    code = "already_suppressed"
    title = "Already suppressed"


class RecipientOptOut(Conflict):
    """The recipient opted out themselves; no tenant user may override that (CAN-SPAM,
    GDPR Art. 21(3): an objection to direct marketing is absolute)."""

    code = "recipient_opt_out"
    title = "The recipient's own opt-out cannot be removed"


class InvalidSuppression(ValidationFailed):
    code = "invalid_suppression"
    title = "Invalid suppression"


class InvalidImport(ValidationFailed):
    code = "invalid_suppression_import"
    title = "Invalid suppression import"


def fingerprint(kind: str, value: str) -> dict[str, str]:
    if kind == SuppressionKind.DOMAIN.value:
        return {"kind": kind, "domain": value}
    return {
        "kind": kind,
        "address_sha256": hashlib.sha256(value.encode("utf-8")).hexdigest(),
        "domain": domain_of(value),
    }


def check(uow: TenantUnitOfWork, address: str) -> SuppressionStatus:
    """Whether `address` (normalized) may be contacted. Reads committed entries at call time."""
    found = repository.matching_suppression(uow, address, domain_and_parents(domain_of(address)))
    if found is None:
        return SuppressionStatus(suppressed=False)
    return SuppressionStatus(
        suppressed=True,
        scope="address" if found.kind == SuppressionKind.ADDRESS.value else "domain",
        reason=found.reason,
        suppression_id=found.id,
    )


def _add(
    uow: TenantUnitOfWork,
    kind: SuppressionKind,
    value: str,
    reason: str,
    note: str | None,
    actor: Actor,
) -> uuid.UUID | None:
    return repository.insert_suppression_if_absent(
        uow, kind=kind.value, value=value, reason=reason, note=note, created_by=actor.id
    )


def add_suppression(
    uow: TenantUnitOfWork,
    request: SuppressionCreate,
    actor: Actor,
    *,
    correlation_id: str | None = None,
) -> SuppressionRead:
    try:
        kind, value = request.normalized()
    except InvalidAddress as exc:
        raise InvalidSuppression(str(exc)) from exc
    new_id = _add(uow, kind, value, request.reason, request.note, actor)
    if new_id is None:
        raise AlreadySuppressed(f"This tenant already suppresses that {kind.value}.")
    AuditChain.append(
        uow,
        AuditEventType.SUPPRESSION_ADDED,
        actor,
        {"suppression_id": str(new_id), "reason": request.reason, **fingerprint(kind, value)},
        correlation_id=correlation_id,
    )
    suppression = uow.get(Suppression, new_id)
    assert suppression is not None
    return SuppressionRead.model_validate(suppression)


def unsubscribe(
    uow: TenantUnitOfWork, address: str, actor: Actor, *, correlation_id: str | None = None
) -> bool:
    """The recipient's own opt-out. Idempotent: True only the first time. `correlation_id`
    files the event under the journey that caused it (a reply asking to stop)."""
    new_id = _add(uow, SuppressionKind.ADDRESS, address, "unsubscribe", None, actor)
    if new_id is None:
        return False
    AuditChain.append(
        uow,
        AuditEventType.UNSUBSCRIBED,
        actor,
        {"suppression_id": str(new_id), "reason": "unsubscribe", **fingerprint("address", address)},
        correlation_id=correlation_id,
    )
    return True


def remove_suppression(uow: TenantUnitOfWork, suppression_id: uuid.UUID, actor: Actor) -> None:
    suppression = uow.get(Suppression, suppression_id)
    if suppression is None:
        raise SuppressionNotFound()
    if suppression.reason == "unsubscribe":
        raise RecipientOptOut()
    payload = {
        "suppression_id": str(suppression.id),
        "reason": suppression.reason,
        **fingerprint(suppression.kind, suppression.value),
    }
    repository.delete_suppression(uow, suppression_id)
    AuditChain.append(uow, AuditEventType.SUPPRESSION_REMOVED, actor, payload)


def list_suppressions(
    uow: TenantUnitOfWork,
    *,
    cursor: str | None,
    limit: int,
    kind: SuppressionKind | None = None,
    reason: str | None = None,
) -> SuppressionPage:
    after = decode_time_cursor(cursor) if cursor else None
    rows = repository.list_suppressions(
        uow,
        after=after,
        limit=limit + 1,
        kind=kind.value if kind else None,
        reason=reason,
    )
    items = [SuppressionRead.model_validate(row) for row in rows[:limit]]
    next_cursor = (
        encode_time_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    )
    return SuppressionPage(items=items, next_cursor=next_cursor)


def _rows(data: bytes) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidImport("The CSV must be UTF-8.") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in reader.fieldnames or []]
        reader.fieldnames = header
        value_column = next((name for name in VALUE_COLUMNS if name in header), None)
        if value_column is None:
            raise InvalidImport(
                "The CSV needs a header row with one of: " + ", ".join(VALUE_COLUMNS) + "."
            )
        rows = []
        for row in reader:
            rows.append((reader.line_num, row))
            if len(rows) > IMPORT_MAX_ROWS:
                raise InvalidImport(f"At most {IMPORT_MAX_ROWS} rows per import.")
    except csv.Error as exc:
        # e.g. a field over the csv module's 131,072-character limit, well within a body.
        raise InvalidImport(f"The CSV cannot be read at line {reader.line_num}: {exc}.") from exc
    return value_column, rows


def import_csv(uow: TenantUnitOfWork, data: bytes, actor: Actor) -> SuppressionImportReport:
    """Add every valid row, report every bad one (line number, value, why); one audit event.

    Columns: `value` (or `email`/`address`/`domain`), optional `kind` and `note`.
    """
    value_column, rows = _rows(data)
    errors: list[ImportRowError] = []
    # The first row per (kind, value) is the one stored; a repeat counts as already
    # suppressed, as when each row was inserted on its own.
    entries: dict[tuple[str, str], str | None] = {}
    valid = 0
    for line, row in rows:
        raw = (row.get(value_column) or "").strip()
        kind_text = (row.get("kind") or "").strip().lower() or None
        try:
            if None in row:
                raise ValueError("more fields than the header has")
            if not raw:
                raise ValueError("empty value")
            if kind_text is not None and kind_text not in {"address", "domain"}:
                raise ValueError(f"unknown kind '{kind_text}' (address or domain)")
            if value_column == "domain" and kind_text is None:
                kind_text = "domain"
            request = SuppressionCreate(
                value=raw[:320],
                kind=SuppressionKind(kind_text) if kind_text else None,
                note=(row.get("note") or "").strip()[:2000] or None,
            )
            kind, value = request.normalized()
        except (ValueError, InvalidAddress) as exc:
            errors.append(ImportRowError(row=line, value=raw[:320], error=_message(exc)))
            continue
        valid += 1
        entries.setdefault((kind.value, value), request.note)
    added = repository.insert_suppressions_if_absent(
        uow,
        [(kind, value, note) for (kind, value), note in entries.items()],
        reason="import",
        created_by=actor.id,
    )
    already = valid - added
    report = SuppressionImportReport(
        rows=len(rows), added=added, already_suppressed=already, errors=errors
    )
    AuditChain.append(
        uow,
        AuditEventType.SUPPRESSIONS_IMPORTED,
        actor,
        {"rows": report.rows, "added": added, "already_suppressed": already, "errors": len(errors)},
    )
    return report


def _message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # a pydantic ValidationError
        return "; ".join(str(e.get("msg", "")) for e in errors())
    return str(exc)


def suppressed_addresses(uow: TenantUnitOfWork, addresses: Sequence[str]) -> set[str]:
    """Which of these normalized addresses may never be contacted (batch form of `check`,
    for imports: `shared.prospects.service.SuppressionLookup`)."""
    if not addresses:
        return set()
    parents = {domain: domain_and_parents(domain) for domain in {domain_of(a) for a in addresses}}
    found = repository.suppressed_values(
        uow, addresses, sorted({d for candidates in parents.values() for d in candidates})
    )
    if not found:
        return set()
    hits = {value for kind, value in found if kind == SuppressionKind.ADDRESS.value}
    suppressed_domains = {value for kind, value in found if kind == SuppressionKind.DOMAIN.value}
    blocked_domains = {
        domain
        for domain, candidates in parents.items()
        if not suppressed_domains.isdisjoint(candidates)
    }
    return {a for a in addresses if a in hits or domain_of(a) in blocked_domains}
