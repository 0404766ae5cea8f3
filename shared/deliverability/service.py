"""Mailboxes and send caps: reserve a send slot atomically, give it back if the send is dropped.

A reservation takes one slot in every capped scope (tenant per day, campaign per day,
mailbox per day and per hour, and new recipients per mailbox per day) inside the caller's
transaction, in one guarded upsert: either every scope has room and all are taken, or the
ones taken are given back at once (the transaction still holds their row locks). Scopes are
always taken in the same order, so concurrent reservations queue on the same rows instead
of deadlocking. Windows are the mailbox's local day and hour.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from shared.audit.repository import Companion
from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork
from shared.deliverability import repository
from shared.deliverability.model import (
    CapScope,
    HealthStatus,
    Window,
    assess_health,
    day_window,
    hour_window,
    throttled_cap,
    time_zone,
)
from shared.deliverability.orm import Mailbox
from shared.deliverability.schemas import (
    CapRefusal,
    CounterKey,
    MailboxCreate,
    MailboxRead,
    MailboxUsage,
    Reservation,
    SendCaps,
)
from shared.errors import Conflict, NotFound

Clock = Callable[[], datetime]


class SendingMailbox(Protocol):
    """What caps and reservations read of a mailbox: the ORM row or a `MailboxSnapshot`."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def health_status(self) -> str: ...
    @property
    def daily_cap(self) -> int: ...
    @property
    def hourly_cap(self) -> int: ...
    @property
    def new_recipients_cap(self) -> int: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class MailboxExists(Conflict):
    code = "mailbox_exists"
    title = "Mailbox exists"


class MailboxNotFound(NotFound):
    code = "mailbox_not_found"
    title = "Mailbox not found"


def create_mailbox(uow: TenantUnitOfWork, request: MailboxCreate, actor: Actor) -> MailboxRead:
    if repository.find_mailbox_by_address(uow, request.address) is not None:
        raise MailboxExists(f"Mailbox {request.address} is already connected.")
    mailbox = uow.add(Mailbox(**request.model_dump(), status="active"))
    try:
        with uow.session.begin_nested():
            uow.flush()
    except IntegrityError as exc:
        raise MailboxExists(f"Mailbox {request.address} is already connected.") from exc
    read = MailboxRead.model_validate(mailbox)
    AuditChain.append(
        uow,
        AuditEventType.MAILBOX_CREATED,
        actor,
        {
            "mailbox_id": str(read.id),
            "provider": read.provider,
            "time_zone": read.time_zone,
            "caps": {
                "daily": read.daily_cap,
                "hourly": read.hourly_cap,
                "new_recipients": read.new_recipients_cap,
            },
        },
    )
    return read


def get_mailbox(uow: TenantUnitOfWork, mailbox_id: uuid.UUID) -> Mailbox:
    mailbox = repository.get_mailbox(uow, mailbox_id)
    if mailbox is None:
        raise MailboxNotFound()
    return mailbox


def record_health(
    uow: TenantUnitOfWork,
    mailbox_id: uuid.UUID,
    *,
    sent: int,
    bounces: int,
    complaints: int,
    clock: Clock = utc_now,
) -> MailboxRead:
    """Store the mailbox's health from its recent counts (bounce and complaint ingestion call
    this with their rolling window)."""
    mailbox = get_mailbox(uow, mailbox_id)
    health = assess_health(sent, bounces, complaints)
    mailbox.health_score = health.score
    mailbox.health_status = health.status.value
    mailbox.bounce_rate = health.bounce_rate
    mailbox.complaint_rate = health.complaint_rate
    mailbox.health_sample_size = health.sample_size
    mailbox.health_updated_at = clock()
    uow.flush()
    return MailboxRead.model_validate(mailbox)


def mailbox_caps(
    mailbox: SendingMailbox,
    *,
    campaign_daily: int | None = None,
    tenant_daily: int | None = None,
    reduced_daily: int | None = None,
    reduced_hourly: int | None = None,
    reduced_new_recipients: int | None = None,
) -> SendCaps:
    """The caps in force for one send: the mailbox's own, lowered by its health status and by
    any reduced caps a policy decision imposed (`throttle`)."""
    status = HealthStatus(mailbox.health_status)
    if mailbox.status != "active":
        status = HealthStatus.PAUSE

    def lowest(own: int, reduced: int | None) -> int:
        capped = throttled_cap(own, status)
        return capped if reduced is None else min(capped, reduced)

    return SendCaps(
        mailbox_daily=lowest(mailbox.daily_cap, reduced_daily),
        mailbox_hourly=lowest(mailbox.hourly_cap, reduced_hourly),
        new_recipients=lowest(mailbox.new_recipients_cap, reduced_new_recipients),
        campaign_daily=campaign_daily,
        tenant_daily=tenant_daily,
    )


def counter_keys(
    mailbox: SendingMailbox,
    campaign_id: uuid.UUID | None,
    now: datetime,
    *,
    new_recipient: bool,
) -> list[CounterKey]:
    """The counters one send touches, in the fixed order they are locked in."""
    return mailbox_counter_keys(
        mailbox.id, mailbox.time_zone, campaign_id, now, new_recipient=new_recipient
    )


def mailbox_counter_keys(
    mailbox_id: uuid.UUID,
    mailbox_time_zone: str,
    campaign_id: uuid.UUID | None,
    now: datetime,
    *,
    new_recipient: bool,
) -> list[CounterKey]:
    """`counter_keys` from the mailbox's id and time zone alone."""
    zone = time_zone(mailbox_time_zone)
    day, hour = day_window(now, zone), hour_window(now, zone)
    keys = [_key(CapScope.TENANT_DAY, "tenant", day)]
    if campaign_id is not None:
        keys.append(_key(CapScope.CAMPAIGN_DAY, str(campaign_id), day))
    mailbox_key = str(mailbox_id)
    keys.append(_key(CapScope.MAILBOX_DAY, mailbox_key, day))
    keys.append(_key(CapScope.MAILBOX_HOUR, mailbox_key, hour))
    if new_recipient:
        keys.append(_key(CapScope.MAILBOX_NEW_DAY, mailbox_key, day))
    return keys


def _key(scope: CapScope, scope_key: str, window: Window) -> CounterKey:
    # Built without validation (twice per send): every value already has its field's type.
    return CounterKey.model_construct(
        scope=scope, scope_key=scope_key, window_start=window.start, window_end=window.end
    )


def _cap_for(scope: CapScope, caps: SendCaps) -> int | None:
    return {
        CapScope.TENANT_DAY: caps.tenant_daily,
        CapScope.CAMPAIGN_DAY: caps.campaign_daily,
        CapScope.MAILBOX_DAY: caps.mailbox_daily,
        CapScope.MAILBOX_HOUR: caps.mailbox_hourly,
        CapScope.MAILBOX_NEW_DAY: caps.new_recipients,
    }[scope]


def usage(
    uow: TenantUnitOfWork,
    mailbox: SendingMailbox,
    campaign_id: uuid.UUID | None,
    clock: Clock = utc_now,
) -> MailboxUsage:
    """What the current windows have used so far (for the policy input and for reporting)."""
    keys = counter_keys(mailbox, campaign_id, clock(), new_recipient=True)
    used = repository.counter_values(uow, keys)
    return MailboxUsage(
        sent_today=used.get(CapScope.MAILBOX_DAY, 0),
        sent_this_hour=used.get(CapScope.MAILBOX_HOUR, 0),
        new_recipients_today=used.get(CapScope.MAILBOX_NEW_DAY, 0),
        campaign_today=used.get(CapScope.CAMPAIGN_DAY, 0),
        tenant_today=used.get(CapScope.TENANT_DAY, 0),
    )


@dataclass(frozen=True)
class PlannedReservation:
    """A reservation ready to be made by another write's statement (`companion`, e.g. the
    send decision's audit event); `complete_reservation` reads what it did."""

    reservation_id: uuid.UUID
    mailbox: SendingMailbox
    recipient: str
    campaign_id: uuid.UUID | None
    caps: SendCaps
    wanted: list[CounterKey]
    companion: Companion


def plan_reservation(
    uow: TenantUnitOfWork,
    *,
    mailbox: SendingMailbox,
    recipient: str,
    campaign_id: uuid.UUID | None,
    caps: SendCaps,
    clock: Clock = utc_now,
    keys: Sequence[CounterKey] | None = None,
) -> PlannedReservation | None:
    """The reservation `reserve_send_slot` would make, as a companion write; None when a
    scope's cap is zero (then call `reserve_send_slot`, which refuses without writing).

    `keys`: the counters `counter_keys(mailbox, campaign_id, now, new_recipient=True)` gave
    the caller a moment ago (the gate read their values for the same decision), so the slot
    is taken in the windows the decision saw."""
    wanted = (
        list(keys)
        if keys is not None
        else counter_keys(mailbox, campaign_id, clock(), new_recipient=True)
    )
    limits = [_cap_for(key.scope, caps) for key in wanted]
    if any(cap is not None and cap <= 0 for cap in limits):
        return None
    reservation_id = uuid.uuid4()
    return PlannedReservation(
        reservation_id=reservation_id,
        mailbox=mailbox,
        recipient=recipient,
        campaign_id=campaign_id,
        caps=caps,
        wanted=wanted,
        companion=repository.reservation_companion(
            uow,
            reservation_id=reservation_id,
            mailbox_id=mailbox.id,
            campaign_id=campaign_id,
            address=recipient,
            keys=wanted,
            caps=limits,
        ),
    )


def complete_reservation(
    uow: TenantUnitOfWork, plan: PlannedReservation, returned: Sequence[Any]
) -> Reservation | CapRefusal:
    """The planned reservation's result from its statement's returned values: the held
    reservation, or the refusal after giving back whatever the statement took."""
    new_recipient, taken, reserved = repository.reservation_outcome(returned)
    keys = [k for k in plan.wanted if new_recipient or k.scope is not CapScope.MAILBOX_NEW_DAY]
    if any(k.scope not in taken for k in keys):
        return _give_back(
            uow,
            plan.mailbox,
            plan.recipient,
            plan.caps,
            keys,
            taken,
            new_recipient,
            plan.reservation_id,
        )
    if not reserved:
        raise RuntimeError("every scope took a slot but the reservation row was not written")
    return Reservation(
        id=plan.reservation_id,
        mailbox_id=plan.mailbox.id,
        campaign_id=plan.campaign_id,
        recipient=plan.recipient,
        new_recipient=new_recipient,
        counters=keys,
    )


def reserve_send_slot(
    uow: TenantUnitOfWork,
    *,
    mailbox: SendingMailbox,
    recipient: str,
    campaign_id: uuid.UUID | None,
    caps: SendCaps,
    clock: Clock = utc_now,
) -> Reservation | CapRefusal:
    """Hold one slot in every capped scope for a send to `recipient`, or say which cap is full.

    Nothing is held after a refusal. The reservation commits with the caller's transaction.
    """
    plan = plan_reservation(
        uow, mailbox=mailbox, recipient=recipient, campaign_id=campaign_id, caps=caps, clock=clock
    )
    if plan is None:
        # A new counter row starts at 1, so a closed scope is never sent to the upsert.
        return _reserve_with_closed_scope(
            uow, mailbox, recipient, campaign_id, caps, clock, uuid.uuid4()
        )
    return complete_reservation(uow, plan, repository.run_reservation(uow, plan.companion))


def _give_back(
    uow: TenantUnitOfWork,
    mailbox: SendingMailbox,
    recipient: str,
    caps: SendCaps,
    keys: list[CounterKey],
    taken: set[CapScope],
    new_recipient: bool,
    reservation_id: uuid.UUID,
    closed: CounterKey | None = None,
) -> CapRefusal:
    # This transaction still holds the rows it incremented: give those back exactly.
    full = closed or next(k for k in keys if k.scope not in taken)
    for key in keys:
        if key.scope in taken:
            repository.give_back_slot(uow, key.scope.value, key.scope_key, key.window_start)
    if new_recipient:
        repository.forget_first_contact(uow, mailbox.id, recipient, reservation_id)
    return CapRefusal(
        scope=full.scope,
        cap=_cap_for(full.scope, caps) or 0,
        window_start=full.window_start,
        window_end=full.window_end,
    )


def _reserve_with_closed_scope(
    uow: TenantUnitOfWork,
    mailbox: SendingMailbox,
    recipient: str,
    campaign_id: uuid.UUID | None,
    caps: SendCaps,
    clock: Clock,
    reservation_id: uuid.UUID,
) -> Reservation | CapRefusal:
    """A cap of zero: refused unless the closed scope is the new-recipients one and this
    mailbox wrote to the recipient before, in which case the other scopes are taken."""
    new_recipient = repository.record_first_contact(uow, mailbox.id, recipient, reservation_id)
    keys = counter_keys(mailbox, campaign_id, clock(), new_recipient=new_recipient)
    limits = [_cap_for(key.scope, caps) for key in keys]
    closed = next(
        (k for k, cap in zip(keys, limits, strict=True) if cap is not None and cap <= 0), None
    )
    taken = set() if closed is not None else repository.take_slots(uow, keys, limits)
    if closed is not None or any(k.scope not in taken for k in keys):
        return _give_back(
            uow, mailbox, recipient, caps, keys, taken, new_recipient, reservation_id, closed
        )
    repository.insert_reservation(
        uow,
        {
            "id": reservation_id,
            "mailbox_id": mailbox.id,
            "campaign_id": campaign_id,
            "recipient": recipient,
            "new_recipient": new_recipient,
            "counters": json.dumps([k.model_dump(mode="json") for k in keys]),
        },
    )
    return Reservation(
        id=reservation_id,
        mailbox_id=mailbox.id,
        campaign_id=campaign_id,
        recipient=recipient,
        new_recipient=new_recipient,
        counters=keys,
    )


def release(uow: TenantUnitOfWork, reservation: Reservation | uuid.UUID) -> bool:
    """Give back the slots of a send that will not happen. Idempotent: False if the
    reservation was already released or its send was consumed."""
    reservation_id = reservation if isinstance(reservation, uuid.UUID) else reservation.id
    settled = repository.settle_reservation(uow, reservation_id, "released")
    if settled is None:
        return False
    for counter in settled["counters"]:
        repository.give_back_slot(
            uow, counter["scope"], counter["scope_key"], counter["window_start"]
        )
    if settled["new_recipient"]:
        repository.forget_first_contact(
            uow, settled["mailbox_id"], settled["recipient"], reservation_id
        )
    return True


def consume(uow: TenantUnitOfWork, reservation: Reservation | uuid.UUID) -> bool:
    """Mark the reservation's send as handed to the provider: it can no longer be released."""
    reservation_id = reservation if isinstance(reservation, uuid.UUID) else reservation.id
    return repository.settle_reservation(uow, reservation_id, "consumed") is not None


def list_mailboxes(uow: TenantUnitOfWork) -> list[MailboxRead]:
    rows = uow.session.scalars(uow.scoped(Mailbox).order_by(Mailbox.created_at, Mailbox.id))
    return [MailboxRead.model_validate(row) for row in rows]
