"""Appending to audit chains: `AuditChain` (per tenant) and `PlatformAuditChain`.

An append locks the chain's head row in the caller's transaction, so the event commits or
rolls back with the business change it records, and appends to one chain are serialized.
Services call these and only flush; the edge commits (ARCHITECTURE.md §3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rfc8785 import CanonicalizationError

from shared.audit.model import ChainRecord, seal
from shared.audit.repository import ChainStore
from shared.audit.schemas import Actor, AuditEventIn, AuditEventType
from shared.db.unit_of_work import DirectoryUnitOfWork, TenantUnitOfWork
from shared.errors import ValidationFailed

Clock = Callable[[], datetime]


class InvalidAuditPayload(ValidationFailed):
    code = "invalid_audit_payload"
    title = "Invalid audit payload"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _append(store: ChainStore, events: Sequence[AuditEventIn], clock: Clock) -> list[ChainRecord]:
    if not events:
        return []
    head = store.lock_head()
    # Timestamps never go backwards within a chain, even across app instances whose clocks
    # disagree: the head remembers the last one and the lock orders the appenders.
    now = clock()
    if head.last_created_at is not None and now < head.last_created_at:
        now = head.last_created_at
    tenant = str(store.tenant_id) if store.tenant_id is not None else None
    sealed: list[tuple[ChainRecord, datetime]] = []
    prev_hash, seq = head.hash, head.seq
    for event in events:
        seq += 1
        try:
            record = seal(
                tenant_id=tenant,
                seq=seq,
                actor=event.actor.to_json(),
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
