"""Queries over mailboxes, send counters, reservations and suppressions.

Counters are plain SQL: the guarded upsert is the whole point (one statement, atomic per
row), and the ORM would add nothing but a round trip.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, text, tuple_

from shared.audit.repository import Companion
from shared.db.unit_of_work import TenantUnitOfWork
from shared.deliverability.model import CapScope, SuppressionKind
from shared.deliverability.orm import Mailbox, SendCounter, Suppression
from shared.deliverability.schemas import CounterKey

# One statement takes a slot in every scope, in the order given (the order rows are locked
# in, the same for every sender). `WHERE c.used < EXCLUDED.cap` makes each increment
# conditional on the row as it is after any concurrent writer commits (the conflicting row
# is locked and re-read), so two senders can never both take the last slot. A new row starts
# at 1, so a zero cap is refused before this. Scopes that were full are missing from the
# RETURNING list.
_TAKE_SLOTS = text(
    """
    INSERT INTO send_counters AS c
        (tenant_id, scope, scope_key, window_start, window_end, used, cap)
    SELECT :tenant_id, s.scope, s.scope_key, s.window_start, s.window_end, 1, s.cap
    FROM unnest(CAST(:scopes AS text[]), CAST(:scope_keys AS text[]),
                CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]),
                CAST(:caps AS integer[]))
         WITH ORDINALITY AS s(scope, scope_key, window_start, window_end, cap, ord)
    ORDER BY s.ord
    ON CONFLICT (tenant_id, scope, scope_key, window_start)
    DO UPDATE SET used = c.used + 1, cap = EXCLUDED.cap, updated_at = now()
        WHERE c.used < EXCLUDED.cap
    RETURNING scope
    """
)

# A whole reservation in one statement: the first-contact row, a slot in every scope (the
# new-recipients scope only when the first-contact row is new) and, only if every scope had
# room, the reservation row. Whether the first-contact row is new picks the counters' input
# in a function argument, so that insert runs before any counter row is locked: the same
# lock order as `record_first_contact` followed by `_TAKE_SLOTS`. The keys come as one JSON
# document: adapting several arrays per call cost more client time than the statement.
# Written as CTEs over `appended` so that it can ride on the send decision's audit event
# (`reservation_companion`): then nothing is written unless the event is, and the counters
# are locked after the chain head, as when they were separate statements.
_RESERVE_CTES = """
    first_contact AS (
        INSERT INTO mailbox_recipients (tenant_id, mailbox_id, address, reservation_id)
        SELECT :tenant_id, :reserve_mailbox_id, :reserve_address, :reserve_id FROM appended
        ON CONFLICT (tenant_id, mailbox_id, address) DO NOTHING
        RETURNING true
    ), wanted AS (
        SELECT k.*
        FROM jsonb_to_recordset(
                 CASE WHEN NOT EXISTS (SELECT 1 FROM appended) THEN CAST('[]' AS jsonb)
                      WHEN EXISTS (SELECT 1 FROM first_contact)
                      THEN CAST(:reserve_keys_new AS jsonb)
                      ELSE CAST(:reserve_keys_known AS jsonb) END)
             AS k(ord integer, scope text, scope_key text, window_start timestamptz,
                  window_end timestamptz, cap integer, counter jsonb)
    ), taken AS (
        INSERT INTO send_counters AS c
            (tenant_id, scope, scope_key, window_start, window_end, used, cap)
        SELECT :tenant_id, w.scope, w.scope_key, w.window_start, w.window_end, 1, w.cap
        FROM wanted w
        ORDER BY w.ord
        ON CONFLICT (tenant_id, scope, scope_key, window_start)
        DO UPDATE SET used = c.used + 1, cap = EXCLUDED.cap, updated_at = now()
            WHERE c.used < EXCLUDED.cap
        RETURNING scope
    ), reserved AS (
        INSERT INTO send_reservations
            (id, tenant_id, mailbox_id, campaign_id, recipient, new_recipient, counters, status)
        SELECT :reserve_id, :tenant_id, :reserve_mailbox_id, :reserve_campaign_id,
               :reserve_address, EXISTS (SELECT 1 FROM first_contact),
               (SELECT jsonb_agg(w.counter ORDER BY w.ord) FROM wanted w), 'reserved'
        WHERE EXISTS (SELECT 1 FROM appended)
          AND (SELECT count(*) FROM taken) = (SELECT count(*) FROM wanted)
        RETURNING id
    )
"""
_RESERVE_RETURNING = (
    "EXISTS (SELECT 1 FROM first_contact), ARRAY(SELECT scope FROM taken), "
    "EXISTS (SELECT 1 FROM reserved)"
)
_RESERVE = text(f"WITH appended AS (SELECT 1), {_RESERVE_CTES} SELECT {_RESERVE_RETURNING}")

_GIVE_BACK_SLOT = text(
    """
    UPDATE send_counters SET used = used - 1, updated_at = now()
    WHERE tenant_id = :tenant_id AND scope = :scope AND scope_key = :scope_key
      AND window_start = :window_start AND used > 0
    """
)

_FIRST_CONTACT = text(
    """
    INSERT INTO mailbox_recipients (tenant_id, mailbox_id, address, reservation_id)
    VALUES (:tenant_id, :mailbox_id, :address, :reservation_id)
    ON CONFLICT (tenant_id, mailbox_id, address) DO NOTHING
    RETURNING true
    """
)

_INSERT_RESERVATION = text(
    """
    INSERT INTO send_reservations
        (id, tenant_id, mailbox_id, campaign_id, recipient, new_recipient, counters, status)
    VALUES (:id, :tenant_id, :mailbox_id, :campaign_id, :recipient, :new_recipient,
            CAST(:counters AS jsonb), 'reserved')
    """
)

_SETTLE_RESERVATION = text(
    """
    UPDATE send_reservations SET status = :status, settled_at = now()
    WHERE tenant_id = :tenant_id AND id = :id AND status = 'reserved'
    RETURNING mailbox_id, recipient, new_recipient, counters
    """
)

UNCAPPED = 2_147_483_647


def get_mailbox(uow: TenantUnitOfWork, mailbox_id: uuid.UUID) -> Mailbox | None:
    return uow.get(Mailbox, mailbox_id)


def find_mailbox_by_address(uow: TenantUnitOfWork, address: str) -> Mailbox | None:
    return uow.session.scalars(uow.scoped(Mailbox).where(Mailbox.address == address)).one_or_none()


def take_slots(
    uow: TenantUnitOfWork, keys: Sequence[CounterKey], caps: Sequence[int | None]
) -> set[CapScope]:
    """The scopes whose counter took a slot; a scope missing from the answer was full."""
    taken = uow.execute(
        _TAKE_SLOTS,
        {
            "tenant_id": uow.tenant_id,
            "scopes": [k.scope.value for k in keys],
            "scope_keys": [k.scope_key for k in keys],
            "starts": [k.window_start for k in keys],
            "ends": [k.window_end for k in keys],
            "caps": [UNCAPPED if cap is None else cap for cap in caps],
        },
    ).scalars()
    return {CapScope(scope) for scope in taken}


def reservation_companion(
    uow: TenantUnitOfWork,
    *,
    reservation_id: uuid.UUID,
    mailbox_id: uuid.UUID,
    campaign_id: uuid.UUID | None,
    address: str,
    keys: Sequence[CounterKey],
    caps: Sequence[int | None],
) -> Companion:
    """The reservation as writes of an audit event's statement; its returned values read
    with `reservation_outcome`. `keys` include the new-recipients scope, which takes a slot
    only if this mailbox never wrote to `address`."""
    entries = [
        {
            "ord": index,
            "scope": key.scope.value,
            "scope_key": key.scope_key,
            "window_start": key.window_start.isoformat(),
            "window_end": key.window_end.isoformat(),
            "cap": UNCAPPED if cap is None else cap,
            "counter": key.model_dump(mode="json"),
        }
        for index, (key, cap) in enumerate(zip(keys, caps, strict=True))
    ]
    return Companion(
        ctes=_RESERVE_CTES,
        params={
            "tenant_id": uow.tenant_id,
            "reserve_id": reservation_id,
            "reserve_mailbox_id": mailbox_id,
            "reserve_campaign_id": campaign_id,
            "reserve_address": address,
            "reserve_keys_new": json.dumps(entries),
            "reserve_keys_known": json.dumps(
                [e for e in entries if e["scope"] != CapScope.MAILBOX_NEW_DAY.value]
            ),
        },
        returning=_RESERVE_RETURNING,
    )


def reservation_outcome(returned: Sequence[Any]) -> tuple[bool, set[CapScope], bool]:
    """(new recipient, scopes that took a slot, reservation row written). The row is written
    only when every wanted scope took a slot; otherwise the caller gives back what was
    taken."""
    new_recipient, taken, reserved = returned
    return bool(new_recipient), {CapScope(scope) for scope in taken}, bool(reserved)


def run_reservation(uow: TenantUnitOfWork, companion: Companion) -> tuple[Any, ...]:
    """A `reservation_companion` on its own, as one statement: its returned values."""
    return tuple(uow.execute(_RESERVE, companion.params).one())


def give_back_slot(uow: TenantUnitOfWork, scope: str, scope_key: str, window_start: Any) -> None:
    uow.execute(
        _GIVE_BACK_SLOT,
        {
            "tenant_id": uow.tenant_id,
            "scope": scope,
            "scope_key": scope_key,
            "window_start": window_start,
        },
    )


def record_first_contact(
    uow: TenantUnitOfWork, mailbox_id: uuid.UUID, address: str, reservation_id: uuid.UUID
) -> bool:
    """True when this mailbox never wrote to `address` before (the row is ours now)."""
    inserted = uow.execute(
        _FIRST_CONTACT,
        {
            "tenant_id": uow.tenant_id,
            "mailbox_id": mailbox_id,
            "address": address,
            "reservation_id": reservation_id,
        },
    ).scalar_one_or_none()
    return bool(inserted)


def forget_first_contact(
    uow: TenantUnitOfWork, mailbox_id: uuid.UUID, address: str, reservation_id: uuid.UUID
) -> None:
    uow.execute(
        text(
            "DELETE FROM mailbox_recipients WHERE tenant_id = :tenant_id "
            "AND mailbox_id = :mailbox_id AND address = :address "
            "AND reservation_id = :reservation_id"
        ),
        {
            "tenant_id": uow.tenant_id,
            "mailbox_id": mailbox_id,
            "address": address,
            "reservation_id": reservation_id,
        },
    )


def insert_reservation(uow: TenantUnitOfWork, params: dict[str, Any]) -> None:
    uow.execute(_INSERT_RESERVATION, {"tenant_id": uow.tenant_id, **params})


def settle_reservation(
    uow: TenantUnitOfWork, reservation_id: uuid.UUID, status: str
) -> dict[str, Any] | None:
    """Move a held reservation to `status`; None if it was already released or consumed."""
    row = (
        uow.execute(
            _SETTLE_RESERVATION,
            {"tenant_id": uow.tenant_id, "id": reservation_id, "status": status},
        )
        .mappings()
        .one_or_none()
    )
    return dict(row) if row is not None else None


def counter_values(uow: TenantUnitOfWork, keys: Sequence[CounterKey]) -> dict[CapScope, int]:
    if not keys:
        return {}
    rows = uow.session.execute(
        select(SendCounter.scope, SendCounter.used).where(
            SendCounter.tenant_id == uow.tenant_id,
            tuple_(SendCounter.scope, SendCounter.scope_key, SendCounter.window_start).in_(
                [(k.scope.value, k.scope_key, k.window_start) for k in keys]
            ),
        )
    ).all()
    return {CapScope(scope): used for scope, used in rows}


def matching_suppression(
    uow: TenantUnitOfWork, address: str, domains: Sequence[str]
) -> Suppression | None:
    """An address entry wins over a domain entry; among domains the most specific wins."""
    candidates = uow.session.scalars(
        uow.scoped(Suppression).where(
            or_(
                and_(
                    Suppression.kind == SuppressionKind.ADDRESS.value, Suppression.value == address
                ),
                and_(
                    Suppression.kind == SuppressionKind.DOMAIN.value,
                    Suppression.value.in_(list(domains)),
                ),
            )
        )
    ).all()
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda s: (s.kind != SuppressionKind.ADDRESS.value, -len(s.value)),
    )


def insert_suppression_if_absent(
    uow: TenantUnitOfWork,
    *,
    kind: str,
    value: str,
    reason: str,
    note: str | None,
    created_by: str,
) -> uuid.UUID | None:
    """The new entry's id, or None when this tenant already suppresses the value."""
    new_id = uuid.uuid4()
    inserted: uuid.UUID | None = uow.execute(
        text(
            "INSERT INTO suppressions (id, tenant_id, kind, value, reason, note, created_by) "
            "VALUES (:id, :tenant_id, :kind, :value, :reason, :note, :created_by) "
            "ON CONFLICT (tenant_id, kind, value) DO NOTHING RETURNING id"
        ),
        {
            "id": new_id,
            "tenant_id": uow.tenant_id,
            "kind": kind,
            "value": value,
            "reason": reason,
            "note": note,
            "created_by": created_by,
        },
    ).scalar_one_or_none()
    return inserted


_INSERT_SUPPRESSIONS = text(
    """
    WITH added AS (
        INSERT INTO suppressions (id, tenant_id, kind, value, reason, note, created_by)
        SELECT gen_random_uuid(), :tenant_id, r->>0, r->>1, :reason, r->>2, :created_by
        FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r
        ON CONFLICT (tenant_id, kind, value) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM added
    """
)


def insert_suppressions_if_absent(
    uow: TenantUnitOfWork,
    entries: Sequence[tuple[str, str, str | None]],
    *,
    reason: str,
    created_by: str,
) -> int:
    """(kind, value, note) entries with distinct (kind, value), in one statement; returns how
    many were new (the others this tenant already suppresses)."""
    if not entries:
        return 0
    added = uow.execute(
        _INSERT_SUPPRESSIONS,
        {
            "tenant_id": uow.tenant_id,
            "rows": json.dumps(entries),
            "reason": reason,
            "created_by": created_by,
        },
    )
    return int(added.scalar_one())


def list_suppressions(
    uow: TenantUnitOfWork,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    kind: str | None,
    reason: str | None,
) -> Sequence[Suppression]:
    query = uow.scoped(Suppression)
    if kind is not None:
        query = query.where(Suppression.kind == kind)
    if reason is not None:
        query = query.where(Suppression.reason == reason)
    if after is not None:
        query = query.where(tuple_(Suppression.created_at, Suppression.id) > tuple_(*after))
    return uow.session.scalars(
        query.order_by(Suppression.created_at, Suppression.id).limit(limit)
    ).all()


def delete_suppression(uow: TenantUnitOfWork, suppression_id: uuid.UUID) -> None:
    uow.execute(
        delete(Suppression).where(
            Suppression.tenant_id == uow.tenant_id, Suppression.id == suppression_id
        )
    )


_SUPPRESSED_VALUES = text(
    """
    SELECT s.kind, s.value FROM suppressions AS s
    WHERE s.tenant_id = :tenant_id AND s.kind = 'address'
      AND s.value IN (SELECT jsonb_array_elements_text(CAST(:addresses AS jsonb)))
    UNION ALL
    SELECT s.kind, s.value FROM suppressions AS s
    WHERE s.tenant_id = :tenant_id AND s.kind = 'domain'
      AND s.value IN (SELECT jsonb_array_elements_text(CAST(:domains AS jsonb)))
    """
)


def suppressed_values(
    uow: TenantUnitOfWork, addresses: Sequence[str], domains: Sequence[str]
) -> set[tuple[str, str]]:
    """The (kind, value) suppressions among these addresses and domains. The values travel as
    two JSON arrays: thousands of bind parameters (an expanding IN) cost more to render and
    plan than the lookup itself."""
    rows = uow.execute(
        _SUPPRESSED_VALUES,
        {
            "tenant_id": uow.tenant_id,
            "addresses": json.dumps(list(addresses)),
            "domains": json.dumps(list(domains)),
        },
    ).all()
    return {(str(kind), str(value)) for kind, value in rows}
