"""SandboxMailbox: the embedded default mail provider and the test peer.

It behaves like a remote provider whose storage happens to be our PostgreSQL: each call runs
in its own tenant transaction (the provider's side), never in the caller's, so a send it
accepted stays accepted whatever the caller does next. It records every message it accepts
(duplicates included: real providers do not deduplicate, and the tests count them), finds
sent messages by Message-ID, lists inbound messages, and injects faults per mailbox.

Faults, drawn per call from a seedable RNG:
- throttle: 429 with Retry-After, nothing stored;
- unavailable: 5xx, nothing stored;
- timeout: the caller times out; half the time the provider had already stored the message;
- unknown: the message is stored, the caller hears OutcomeUnknown (a dropped connection).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select

from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.mail.mime import parse_message
from shared.mail.orm import SandboxFaultPlan, SandboxMessage
from shared.mail.port import (
    InboundMessage,
    InboundPage,
    OutboundEmail,
    OutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnavailable,
    SendReceipt,
    SentRecord,
    utc_now,
)
from shared.mail.schemas import FaultPlan, SandboxMessagePage, SandboxMessageRead

Clock = Callable[[], datetime]


class Fault(StrEnum):
    THROTTLE = "throttle"
    UNAVAILABLE = "unavailable"
    TIMEOUT_BEFORE_WRITE = "timeout_before_write"
    TIMEOUT_AFTER_WRITE = "timeout_after_write"
    UNKNOWN = "unknown"


_STORES = {None, Fault.TIMEOUT_AFTER_WRITE, Fault.UNKNOWN}


def draw_fault(plan: FaultPlan, rng: random.Random, *, writing: bool) -> Fault | None:
    """One draw per call. Reads (`writing=False`) can be throttled, fail or time out, but
    have no "accepted but unknown" outcome."""
    roll = rng.random()
    for rate, fault in (
        (plan.throttle_rate, Fault.THROTTLE),
        (plan.unavailable_rate, Fault.UNAVAILABLE),
        (plan.timeout_rate, Fault.TIMEOUT_BEFORE_WRITE),
        (plan.unknown_rate if writing else 0.0, Fault.UNKNOWN),
    ):
        if roll < rate:
            if fault is Fault.TIMEOUT_BEFORE_WRITE and writing and rng.random() < 0.5:
                return Fault.TIMEOUT_AFTER_WRITE
            return fault
        roll -= rate
    return None


def _raise_for(fault: Fault, plan: FaultPlan) -> None:
    match fault:
        case Fault.THROTTLE:
            raise ProviderThrottled(plan.retry_after_seconds, "sandbox: 429 Too Many Requests")
        case Fault.UNAVAILABLE:
            raise ProviderUnavailable("sandbox: 503 Service Unavailable")
        case Fault.TIMEOUT_BEFORE_WRITE | Fault.TIMEOUT_AFTER_WRITE:
            raise ProviderTimeout("sandbox: request timed out")
        case Fault.UNKNOWN:
            raise OutcomeUnknown("sandbox: connection dropped after the request was written")


class _RngRegistry:
    """One RNG per mailbox and seed in this process, so a seeded plan draws a reproducible
    sequence across the many SandboxMailbox objects the factory builds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rngs: dict[tuple[uuid.UUID, int | None], random.Random] = {}

    def draw(self, mailbox_id: uuid.UUID, plan: FaultPlan, *, writing: bool) -> Fault | None:
        with self._lock:
            key = (mailbox_id, plan.seed)
            rng = self._rngs.get(key)
            if rng is None:
                # Fault injection, not cryptography.
                rng = self._rngs[key] = random.Random(plan.seed)  # noqa: S311
            return draw_fault(plan, rng, writing=writing)

    def reset(self) -> None:
        with self._lock:
            self._rngs.clear()


fault_rngs = _RngRegistry()


@dataclass
class SandboxMailbox:
    tenant_id: uuid.UUID
    mailbox_id: uuid.UUID
    address: str
    clock: Clock = utc_now
    sent_visibility_seconds: float = 0.0

    def send(self, message: OutboundEmail) -> SendReceipt:
        stored: SandboxMessage | None = None
        with tenant_unit_of_work(self.tenant_id) as uow:
            plan = load_fault_plan(uow, self.mailbox_id)
            fault = fault_rngs.draw(self.mailbox_id, plan, writing=True)
            if fault in _STORES:
                self._check(message)
                stored = uow.add(_sent_row(self.mailbox_id, message))
                uow.flush()
        if fault is not None:
            _raise_for(fault, plan)
        assert stored is not None
        return SendReceipt(
            message_id=message.message_id,
            accepted_at=stored.created_at,
            provider_message_id=str(stored.id),
        )

    def _check(self, message: OutboundEmail) -> None:
        """What a real provider refuses: a From it does not own, a Message-ID it would not keep."""
        parsed = parse_message(message.raw)
        if parsed.sender != self.address.lower():
            raise ProviderRejected(f"sender {parsed.sender!r} is not this mailbox")
        if parsed.message_id != message.message_id:
            raise ProviderRejected("the Message-ID header does not match the message")
        if not parsed.recipients:
            raise ProviderRejected("no recipients")

    def find_sent(self, message_id: str) -> SentRecord | None:
        with tenant_unit_of_work(self.tenant_id) as uow:
            plan = load_fault_plan(uow, self.mailbox_id)
            fault = fault_rngs.draw(self.mailbox_id, plan, writing=False)
            found = None
            if fault is None:
                found = uow.session.scalars(
                    uow.scoped(SandboxMessage)
                    .where(
                        SandboxMessage.mailbox_id == self.mailbox_id,
                        SandboxMessage.direction == "sent",
                        SandboxMessage.message_id == message_id,
                    )
                    .order_by(SandboxMessage.seq)
                    .limit(1)
                ).one_or_none()
        if fault is not None:
            _raise_for(fault, plan)
        if found is None:
            return None
        return SentRecord(message_id, found.created_at, provider_message_id=str(found.id))

    def list_inbound(self, after: str | None, limit: int = 100) -> InboundPage:
        start = int(after) if after else 0
        with tenant_unit_of_work(self.tenant_id) as uow:
            rows = uow.session.scalars(
                uow.scoped(SandboxMessage)
                .where(
                    SandboxMessage.mailbox_id == self.mailbox_id,
                    SandboxMessage.direction == "inbound",
                    SandboxMessage.seq > start,
                )
                .order_by(SandboxMessage.seq)
                .limit(limit)
            ).all()
        messages = [InboundMessage(str(row.id), row.raw, row.created_at) for row in rows]
        return InboundPage(messages, str(rows[-1].seq) if rows else after)


def _sent_row(mailbox_id: uuid.UUID, message: OutboundEmail) -> SandboxMessage:
    parsed = parse_message(message.raw)
    return SandboxMessage(
        mailbox_id=mailbox_id,
        direction="sent",
        message_id=message.message_id,
        sender=message.sender,
        recipients=list(message.recipients),
        subject=parsed.subject,
        raw=message.raw,
    )


def load_fault_plan(uow: TenantUnitOfWork, mailbox_id: uuid.UUID) -> FaultPlan:
    row = uow.session.scalars(
        uow.scoped(SandboxFaultPlan).where(SandboxFaultPlan.mailbox_id == mailbox_id)
    ).one_or_none()
    return FaultPlan() if row is None else FaultPlan.model_validate(row.plan)


def set_fault_plan(uow: TenantUnitOfWork, mailbox_id: uuid.UUID, plan: FaultPlan) -> FaultPlan:
    row = uow.session.scalars(
        uow.scoped(SandboxFaultPlan)
        .where(SandboxFaultPlan.mailbox_id == mailbox_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        uow.add(SandboxFaultPlan(mailbox_id=mailbox_id, plan=plan.model_dump(mode="json")))
    else:
        row.plan = plan.model_dump(mode="json")
    uow.flush()
    return plan


def deposit_inbound(uow: TenantUnitOfWork, mailbox_id: uuid.UUID, raw: bytes) -> SandboxMessage:
    """A message arriving at the sandbox mailbox (a reply, bounce or auto-reply), stored as
    received, whatever it contains."""
    parsed = parse_message(raw)
    row = uow.add(
        SandboxMessage(
            mailbox_id=mailbox_id,
            direction="inbound",
            message_id=parsed.message_id,
            sender=parsed.sender,
            recipients=parsed.recipients[:100],
            subject=parsed.subject,
            raw=raw,
        )
    )
    uow.flush()
    return row


def list_messages(
    uow: TenantUnitOfWork,
    mailbox_id: uuid.UUID,
    *,
    direction: str | None = None,
    after: int = 0,
    limit: int = 100,
    include_raw: bool = False,
) -> SandboxMessagePage:
    query = (
        select(SandboxMessage, func.octet_length(SandboxMessage.raw))
        .where(
            SandboxMessage.tenant_id == uow.tenant_id,
            SandboxMessage.mailbox_id == mailbox_id,
            SandboxMessage.seq > after,
        )
        .order_by(SandboxMessage.seq)
        .limit(limit + 1)
    )
    if direction is not None:
        query = query.where(SandboxMessage.direction == direction)
    rows = uow.session.execute(query).all()
    items = [
        SandboxMessageRead(
            id=row.id,
            seq=row.seq,
            direction=row.direction,
            message_id=row.message_id,
            sender=row.sender,
            recipients=row.recipients,
            subject=row.subject,
            size_bytes=size,
            created_at=row.created_at,
            raw=row.raw.decode("utf-8", errors="replace") if include_raw else None,
        )
        for row, size in rows[:limit]
    ]
    return SandboxMessagePage(
        items=items, next_cursor=items[-1].seq if len(rows) > limit and items else None
    )


def sent_message_ids(uow: TenantUnitOfWork, mailbox_id: uuid.UUID | None = None) -> list[str]:
    """Every Message-ID the sandbox accepted, once per acceptance: duplicates show twice."""
    query = uow.scoped(SandboxMessage).where(SandboxMessage.direction == "sent")
    if mailbox_id is not None:
        query = query.where(SandboxMessage.mailbox_id == mailbox_id)
    return [row.message_id or "" for row in uow.session.scalars(query.order_by(SandboxMessage.seq))]
