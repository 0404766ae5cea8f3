"""The inbound path: store each arriving message once, thread it to the touch it answers,
and signal the reply to whoever runs that prospect's sequence.

Storing and signalling are separate steps. `ingest_raw` stores the message and, when it
answers one of our touches, marks a signal as pending in the same transaction (an outbox);
`dispatch_reply_signals` raises the pending signals after that commit and marks them raised.
A crash between the two raises a signal again, so receivers deduplicate on the inbound
message id. Classifying replies (positive, bounce, auto-reply) is shared/replies' job.

Nothing that arrives may crash this path: unparseable MIME, missing headers and oversized
messages are stored with the problems found and a reason.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deliverability.orm import Mailbox as MailboxRow
from shared.deliverability.service import MailboxNotFound
from shared.mail.factory import MailboxRef, MailboxResolver, mailbox_for
from shared.mail.mime import ParsedMessage, parse_message
from shared.mail.orm import InboundMail, SendIntent
from shared.mail.port import utc_now
from shared.mail.schemas import InboundRead, IngestResult
from shared.mail.sending import intent_by_message_id
from shared.replies.service import classify_on_arrival

RECEIVER = Actor(type=ActorType.SYSTEM, id="mail.inbound", display="Mail inbound")

# Larger messages keep their header section and the start of their body: what makes a
# message large (attachments, a returned original) comes after what threading and
# classification read, the headers, the text a person wrote and a report's status part.
MAX_STORED_BYTES = 10 * 1024 * 1024
KEPT_PREFIX_BYTES = 1024 * 1024
HEADER_SCAN_BYTES = 256 * 1024


@dataclass(frozen=True)
class ReplyEvent:
    """A reply to one of our touches. `inbound_id` is the deduplication key."""

    tenant_id: uuid.UUID
    mailbox_id: uuid.UUID
    inbound_id: uuid.UUID
    intent_id: uuid.UUID
    prospect_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    message_id: str | None
    content_type: str
    correlation_id: str | None


class ReplySignal(Protocol):
    """How a reply reaches the prospect's sequence. The durable implementation raises the
    orchestration's `reply` external event; it must tolerate the same event twice."""

    def raise_reply(self, event: ReplyEvent) -> None: ...


@dataclass
class InMemoryReplySignal:
    raised: list[ReplyEvent] = field(default_factory=list)

    def raise_reply(self, event: ReplyEvent) -> None:
        self.raised.append(event)


def _header_section(raw: bytes) -> bytes:
    head = raw[:HEADER_SCAN_BYTES]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i != -1]
    return head[: min(ends) + 2] if ends else head


def _prefix(raw: bytes) -> bytes:
    """The start of an oversized message, cut at a line end and never inside its headers."""
    cut = max(KEPT_PREFIX_BYTES, len(_header_section(raw)))
    line_end = raw.rfind(b"\n", 0, cut)
    return raw[: line_end + 1] if line_end > cut // 2 else raw[:cut]


def _thread_candidates(parsed: ParsedMessage) -> list[str]:
    """Our Message-IDs this message may answer, most specific first: In-Reply-To, then
    References newest first, then the original a delivery report quotes."""
    ids = [parsed.in_reply_to] if parsed.in_reply_to else []
    ids.extend(reversed(parsed.references))
    ids.extend(parsed.reported_message_ids)
    return list(dict.fromkeys(ids))


def ingest_raw(
    uow: TenantUnitOfWork,
    mailbox_id: uuid.UUID,
    raw: bytes,
    *,
    provider_id: str | None = None,
    received_at: datetime | None = None,
) -> IngestResult:
    """Store `raw` once per mailbox (by Message-ID, else by content hash) and thread it."""
    if uow.get(MailboxRow, mailbox_id) is None:
        raise MailboxNotFound(f"Mailbox {mailbox_id} does not exist.")
    size = len(raw)
    reasons: list[str] = []
    too_large = size > MAX_STORED_BYTES
    if too_large:
        reasons.append(
            f"too_large: {size} bytes, over {MAX_STORED_BYTES}; "
            f"only the first {KEPT_PREFIX_BYTES} kept"
        )
    kept = _prefix(raw) if too_large else raw
    parsed = parse_message(kept)
    dedupe_key = parsed.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    intent = intent_by_message_id(uow, _thread_candidates(parsed))
    if intent is None:
        reasons.append("unthreaded: answers none of our sent messages")
    if parsed.problems and parsed.message_id is None:
        reasons.append("malformed: " + "; ".join(parsed.problems[:5]))
    inserted = uow.execute(
        insert(InboundMail)
        .values(
            id=uuid.uuid4(),
            tenant_id=uow.tenant_id,
            mailbox_id=mailbox_id,
            dedupe_key=dedupe_key,
            message_id=parsed.message_id,
            provider_id=provider_id[:255] if provider_id else None,
            sender=parsed.sender,
            subject=parsed.subject,
            in_reply_to=parsed.in_reply_to,
            references=parsed.references[:100],
            content_type=parsed.content_type,
            intent_id=intent.id if intent else None,
            campaign_id=intent.campaign_id if intent else None,
            prospect_id=intent.prospect_id if intent else None,
            raw=kept,
            size_bytes=size,
            problems=parsed.problems[:50],
            reason="; ".join(reasons) or None,
            signal_state="pending" if intent else "none",
            received_at=received_at or utc_now(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "mailbox_id", "dedupe_key"])
        .returning(InboundMail.id)
    ).scalar_one_or_none()
    stored = uow.session.scalars(
        uow.scoped(InboundMail).where(
            InboundMail.mailbox_id == mailbox_id, InboundMail.dedupe_key == dedupe_key
        )
    ).one()
    if inserted is not None:
        AuditChain.append(
            uow,
            AuditEventType.REPLY_RECEIVED if intent else AuditEventType.INBOUND_STORED,
            RECEIVER,
            {
                "inbound_id": str(stored.id),
                "mailbox_id": str(mailbox_id),
                "message_id": parsed.message_id,
                "intent_id": str(intent.id) if intent else None,
                "prospect_id": str(intent.prospect_id) if intent and intent.prospect_id else None,
                "campaign_id": str(intent.campaign_id) if intent and intent.campaign_id else None,
                "content_type": parsed.content_type,
                "size_bytes": size,
                "reason": stored.reason,
            },
            correlation_id=intent.correlation_id if intent else None,
        )
    return IngestResult(inbound=InboundRead.model_validate(stored), created=inserted is not None)


def _pending_events(uow: TenantUnitOfWork, limit: int) -> list[ReplyEvent]:
    rows = uow.session.execute(
        uow.scoped(InboundMail)
        .add_columns(SendIntent.correlation_id)
        .join(
            SendIntent,
            (SendIntent.tenant_id == InboundMail.tenant_id)
            & (SendIntent.id == InboundMail.intent_id),
        )
        .where(InboundMail.signal_state == "pending")
        .order_by(InboundMail.created_at, InboundMail.id)
        .limit(limit)
    ).all()
    return [
        ReplyEvent(
            tenant_id=uow.tenant_id,
            mailbox_id=row.mailbox_id,
            inbound_id=row.id,
            intent_id=row.intent_id,
            prospect_id=row.prospect_id,
            campaign_id=row.campaign_id,
            message_id=row.message_id,
            content_type=row.content_type,
            correlation_id=correlation_id,
        )
        for row, correlation_id in rows
        if row.intent_id is not None
    ]


def dispatch_reply_signals(tenant_id: uuid.UUID, signal: ReplySignal, *, limit: int = 100) -> int:
    """Raise the pending reply signals (outside any transaction) and mark each raised."""
    with tenant_unit_of_work(tenant_id) as uow:
        events = _pending_events(uow, limit)
    for event in events:
        signal.raise_reply(event)
        with tenant_unit_of_work(tenant_id) as uow:
            uow.execute(
                update(InboundMail)
                .where(
                    InboundMail.tenant_id == tenant_id,
                    InboundMail.id == event.inbound_id,
                    InboundMail.signal_state == "pending",
                )
                .values(signal_state="raised")
            )
    return len(events)


def sync_mailbox(
    tenant_id: uuid.UUID,
    mailbox_id: uuid.UUID,
    signal: ReplySignal,
    *,
    after: str | None = None,
    limit: int = 100,
    mailboxes: MailboxResolver = mailbox_for,
) -> str | None:
    """Pull what arrived since `after` from the provider, ingest and classify it, raise reply
    signals.
    Returns the cursor for the next call; re-reading from an older cursor stores nothing twice."""
    with tenant_unit_of_work(tenant_id) as uow:
        row = uow.get(MailboxRow, mailbox_id)
        if row is None:
            raise MailboxNotFound(f"Mailbox {mailbox_id} does not exist.")
        ref = MailboxRef.of(row)
    page = mailboxes(tenant_id, ref).list_inbound(after, limit)
    for message in page.messages:
        with tenant_unit_of_work(tenant_id) as uow:
            result = ingest_raw(
                uow,
                mailbox_id,
                message.raw,
                provider_id=message.provider_id,
                received_at=message.received_at,
            )
            if result.created:
                # As the sandbox endpoint does: an unthreaded bounce or complaint has no
                # journey to signal, so only this classification suppresses its address.
                classify_on_arrival(uow, result.inbound.id)
    dispatch_reply_signals(tenant_id, signal)
    return page.cursor


def inbound_for_intents(
    uow: TenantUnitOfWork, intent_ids: Sequence[uuid.UUID]
) -> list[InboundRead]:
    rows = uow.session.scalars(
        uow.scoped(InboundMail)
        .where(InboundMail.intent_id.in_(list(intent_ids)))
        .order_by(InboundMail.received_at)
    )
    return [InboundRead.model_validate(row) for row in rows]
