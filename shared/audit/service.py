"""Appending to audit chains: `AuditChain` (per tenant) and `PlatformAuditChain`.

An append locks the chain's head row in the caller's transaction, so the event commits or
rolls back with the business change it records, and appends to one chain are serialized.
Services call these and only flush; the edge commits (ARCHITECTURE.md §3).
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rfc8785 import CanonicalizationError

from shared.audit.bundle import bundle_prefix
from shared.audit.checkpoints import bundle_for
from shared.audit.model import (
    ChainRecord,
    canonical_json,
    format_timestamp,
    parse_timestamp,
    record_template,
    seal,
)
from shared.audit.repository import ChainStore, Companion
from shared.audit.schemas import (
    Actor,
    AuditEventFilter,
    AuditEventIn,
    AuditEventPage,
    AuditEventRead,
    AuditEventType,
)
from shared.db.unit_of_work import DirectoryUnitOfWork, TenantUnitOfWork
from shared.errors import ValidationFailed

Clock = Callable[[], datetime]


class InvalidAuditPayload(ValidationFailed):
    code = "invalid_audit_payload"
    title = "Invalid audit payload"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _append_one(
    store: ChainStore, event: AuditEventIn, clock: Clock, companion: Companion | None = None
) -> tuple[ChainRecord, tuple[Any, ...]]:
    """One event: everything but seq, prev_hash and created_at is encoded before the head is
    locked; the database fills those in, hashes and inserts in the locking statement."""
    actor = event.actor.to_json()
    tenant = str(store.tenant_id) if store.tenant_id is not None else None
    try:
        template = record_template(
            tenant_id=tenant,
            actor=actor,
            event_type=event.event_type.value,
            event_json=event.payload,
            correlation_id=event.correlation_id,
            idempotency_key=event.idempotency_key,
        )
    except (CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidAuditPayload(f"{event.event_type}: payload is not I-JSON ({exc})") from exc
    params = {
        "actor": canonical_json(actor).decode(),
        "event_type": event.event_type.value,
        "correlation_id": event.correlation_id,
        "idempotency_key": event.idempotency_key,
    }
    seq, prev_hash, digest, created_at, returned = store.append_sealed_in_database(
        template, params, clock(), companion
    )
    record = ChainRecord(
        tenant_id=tenant,
        seq=seq,
        actor=actor,
        event_type=event.event_type.value,
        event_json=event.payload,
        correlation_id=event.correlation_id,
        idempotency_key=event.idempotency_key,
        payload_hash=template.payload_hash,
        prev_hash=prev_hash,
        created_at=format_timestamp(created_at),
        hash=digest,
    )
    record.remember_canonical(template.canonical_payload)
    return record, returned


def _append(store: ChainStore, events: Sequence[AuditEventIn], clock: Clock) -> list[ChainRecord]:
    if not events:
        return []
    if len(events) == 1:
        return [_append_one(store, events[0], clock)[0]]
    head = store.lock_head()
    # Timestamps never go backwards within a chain, even across app instances whose clocks
    # disagree: the head remembers the last one and the lock orders the appenders.
    now = clock()
    if head.last_created_at is not None and now < head.last_created_at:
        now = head.last_created_at
    tenant = str(store.tenant_id) if store.tenant_id is not None else None
    sealed: list[tuple[ChainRecord, datetime]] = []
    prev_hash, seq = head.hash, head.seq
    actors: dict[Actor, dict[str, Any]] = {}
    for event in events:
        seq += 1
        actor = actors.get(event.actor)
        if actor is None:
            actor = actors[event.actor] = event.actor.to_json()
        try:
            record = seal(
                tenant_id=tenant,
                seq=seq,
                actor=actor,
                event_type=event.event_type.value,
                event_json=event.payload,
                correlation_id=event.correlation_id,
                idempotency_key=event.idempotency_key,
                prev_hash=prev_hash,
                created_at=now,
            )
        except (CanonicalizationError, TypeError, ValueError) as exc:
            raise InvalidAuditPayload(f"{event.event_type}: payload is not I-JSON ({exc})") from exc
        sealed.append((record, now))
        prev_hash = record.hash
    store.write(sealed, expected_head_seq=head.seq)
    return [record for record, _ in sealed]


def _event(
    event_type: AuditEventType,
    actor: Actor,
    payload: Mapping[str, Any] | None,
    correlation_id: str | None,
    idempotency_key: str | None,
) -> AuditEventIn:
    return AuditEventIn(
        event_type=event_type,
        actor=actor,
        payload=dict(payload or {}),
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
    )


class AuditChain:
    """A tenant's chain. Append inside the same unit of work as the change being recorded."""

    clock: Clock = staticmethod(_utc_now)

    @classmethod
    def append(
        cls,
        uow: TenantUnitOfWork,
        event_type: AuditEventType,
        actor: Actor,
        payload: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ChainRecord:
        event = _event(event_type, actor, payload, correlation_id, idempotency_key)
        return _append(ChainStore.for_tenant(uow), [event], cls.clock)[0]

    @classmethod
    def append_with(
        cls,
        uow: TenantUnitOfWork,
        event_type: AuditEventType,
        actor: Actor,
        payload: Mapping[str, Any],
        companion: Companion,
        correlation_id: str | None = None,
    ) -> tuple[ChainRecord, tuple[Any, ...]]:
        """Append one event and make `companion`'s writes in the same statement (they can
        read the event's seq from `appended`): records that must exist exactly when their
        event does, written without more round trips. Returns the event and the values of
        the companion's `returning`."""
        event = _event(event_type, actor, payload, correlation_id, None)
        return _append_one(ChainStore.for_tenant(uow), event, cls.clock, companion)

    @classmethod
    def append_many(
        cls, uow: TenantUnitOfWork, events: Sequence[AuditEventIn]
    ) -> list[ChainRecord]:
        """Append events in order under one head lock and one multi-row insert."""
        return _append(ChainStore.for_tenant(uow), events, cls.clock)


class PlatformAuditChain:
    """Events with no tenant (refused tokens, provisioning): a directory unit of work."""

    clock: Clock = staticmethod(_utc_now)

    @classmethod
    def append(
        cls,
        duow: DirectoryUnitOfWork,
        event_type: AuditEventType,
        actor: Actor,
        payload: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ChainRecord:
        event = _event(event_type, actor, payload, correlation_id, idempotency_key)
        return _append(ChainStore.for_platform(duow), [event], cls.clock)[0]

    @classmethod
    def append_many(
        cls, duow: DirectoryUnitOfWork, events: Sequence[AuditEventIn]
    ) -> list[ChainRecord]:
        return _append(ChainStore.for_platform(duow), events, cls.clock)


def _read(record: ChainRecord) -> AuditEventRead:
    return AuditEventRead(
        tenant_id=uuid.UUID(record.tenant_id) if record.tenant_id else None,
        seq=record.seq,
        actor=dict(record.actor),
        event_type=record.event_type,
        event_json=dict(record.event_json),
        correlation_id=record.correlation_id,
        idempotency_key=record.idempotency_key,
        payload_hash=record.payload_hash,
        prev_hash=record.prev_hash,
        hash=record.hash,
        created_at=parse_timestamp(record.created_at),
    )


def list_events(uow: TenantUnitOfWork, query: AuditEventFilter) -> AuditEventPage:
    """One page of this tenant's events in seq order; `next_cursor` continues after it."""
    records = ChainStore.for_tenant(uow).page(
        after_seq=query.after_seq,
        limit=query.limit,
        event_type=query.event_type.value if query.event_type else None,
        actor_id=query.actor_id,
        correlation_id=query.correlation_id,
        since=query.since,
        until=query.until,
    )
    items = [_read(record) for record in records]
    next_cursor = items[-1].seq if len(items) == query.limit else None
    return AuditEventPage(items=items, next_cursor=next_cursor)


@dataclass(frozen=True)
class AuditExport:
    archive: bytes
    checkpoints: int
    signed_through_seq: int
    head_seq: int


def export_bundles(uow: TenantUnitOfWork, actor: Actor, *, from_checkpoint: int = 1) -> AuditExport:
    """A zip of this tenant's signed bundles (each verifiable with `asep audit verify
    --bundle`); events after the last checkpoint are not in it until the next checkpoint.
    The export is itself audited."""
    chain = ChainStore.for_tenant(uow)
    checkpoints = [c for c in chain.checkpoints_list() if c.number >= from_checkpoint]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for checkpoint in checkpoints:
            prefix = bundle_prefix(chain.scope, checkpoint.number)
            for name, data in bundle_for(chain, checkpoint).files().items():
                archive.writestr(f"{prefix}/{name}", data)
    head = chain.read_head()
    signed_through = checkpoints[-1].tree_size if checkpoints else 0
    AuditChain.append(
        uow,
        AuditEventType.AUDIT_EXPORTED,
        actor,
        {"from_checkpoint": from_checkpoint, "checkpoints": len(checkpoints),
         "signed_through_seq": signed_through},
    )  # fmt: skip
    return AuditExport(
        archive=buffer.getvalue(),
        checkpoints=len(checkpoints),
        signed_through_seq=signed_through,
        head_seq=head.seq if head is not None else 0,
    )
