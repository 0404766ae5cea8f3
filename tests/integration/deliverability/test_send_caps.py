"""Send-slot reservations: every capped scope, release, and no overshoot under concurrency."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from shared.audit.schemas import Actor, ActorType
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability import service as caps
from shared.deliverability.model import CapScope
from shared.deliverability.schemas import CapRefusal, MailboxCreate, Reservation, SendCaps
from tests.integration.deliverability.conftest import new_tenant

ACTOR = Actor(type=ActorType.SYSTEM, id="caps-test")
NOON = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def _clock() -> datetime:
    return NOON


def _mailbox(tenant_id: uuid.UUID, **overrides: int | str) -> uuid.UUID:
    fields: dict[str, int | str] = {
        "address": f"sender-{uuid.uuid4().hex[:8]}@acme.example",
        "provider": "sandbox",
        "time_zone": "Europe/Berlin",
        "daily_cap": 100,
        "hourly_cap": 100,
        "new_recipients_cap": 100,
    }
    fields.update(overrides)
    with tenant_unit_of_work(tenant_id) as uow:
        return caps.create_mailbox(uow, MailboxCreate.model_validate(fields), ACTOR).id


def _reserve(
    tenant_id: uuid.UUID,
    mailbox_id: uuid.UUID,
    recipient: str,
    send_caps: SendCaps,
    campaign_id: uuid.UUID | None = None,
) -> Reservation | CapRefusal:
    with tenant_unit_of_work(tenant_id) as uow:
        mailbox = caps.get_mailbox(uow, mailbox_id)
        return caps.reserve_send_slot(
            uow,
            mailbox=mailbox,
            recipient=recipient,
            campaign_id=campaign_id,
            caps=send_caps,
            clock=_clock,
        )


def _counters(tenant_id: uuid.UUID) -> dict[str, int]:
    with tenant_unit_of_work(tenant_id) as uow:
        rows = uow.execute(text("SELECT scope, sum(used) FROM send_counters GROUP BY scope")).all()
        return {scope: int(used) for scope, used in rows}


def test_each_scope_refuses_at_its_cap_and_names_itself(client: TestClient) -> None:
    for scope, send_caps in (
        (CapScope.MAILBOX_DAY, SendCaps(mailbox_daily=2)),
        (CapScope.MAILBOX_HOUR, SendCaps(mailbox_hourly=2)),
        (CapScope.MAILBOX_NEW_DAY, SendCaps(new_recipients=2)),
        (CapScope.CAMPAIGN_DAY, SendCaps(campaign_daily=2)),
        (CapScope.TENANT_DAY, SendCaps(tenant_daily=2)),
    ):
        tenant = new_tenant("caps")
        mailbox_id = _mailbox(tenant.id)
        campaign = uuid.uuid4()
        results = [
            _reserve(tenant.id, mailbox_id, f"r{i}@x.example", send_caps, campaign)
            for i in range(3)
        ]
        assert [isinstance(r, Reservation) for r in results] == [True, True, False], scope
        refusal = results[2]
        assert isinstance(refusal, CapRefusal)
        assert refusal.scope is scope
        assert refusal.cap == 2
        assert _counters(tenant.id)[scope.value] == 2
        # Nothing of the refused attempt is held anywhere.
        assert _counters(tenant.id)[CapScope.MAILBOX_DAY.value] == 2


def test_windows_are_the_mailboxs_local_day(client: TestClient) -> None:
    tenant = new_tenant("caps-tz")
    mailbox_id = _mailbox(tenant.id, time_zone="Asia/Tokyo")
    reservation = _reserve(tenant.id, mailbox_id, "a@x.example", SendCaps())
    assert isinstance(reservation, Reservation)
    day = next(c for c in reservation.counters if c.scope is CapScope.MAILBOX_DAY)
    # Noon UTC on 10 June is 21:00 in Tokyo (UTC+9): that day began at 15:00 UTC on 9 June.
    assert day.window_start == datetime(2026, 6, 9, 15, 0, tzinfo=UTC)


def test_only_first_contacts_count_as_new_recipients(client: TestClient) -> None:
    tenant = new_tenant("caps-new")
    mailbox_id = _mailbox(tenant.id)
    send_caps = SendCaps(new_recipients=1)
    first = _reserve(tenant.id, mailbox_id, "same@x.example", send_caps)
    again = _reserve(tenant.id, mailbox_id, "same@x.example", send_caps)
    other = _reserve(tenant.id, mailbox_id, "other@x.example", send_caps)
    assert isinstance(first, Reservation)
    assert first.new_recipient
    assert isinstance(again, Reservation)
    assert not again.new_recipient
    assert isinstance(other, CapRefusal)
    assert other.scope is CapScope.MAILBOX_NEW_DAY


def test_a_zero_cap_refuses_without_holding_anything(client: TestClient) -> None:
    tenant = new_tenant("caps-zero")
    mailbox_id = _mailbox(tenant.id)
    known = _reserve(tenant.id, mailbox_id, "known@x.example", SendCaps())
    assert isinstance(known, Reservation)
    # No new recipients today: a recipient written to before still goes, a new one does not.
    no_new = SendCaps(new_recipients=0)
    again = _reserve(tenant.id, mailbox_id, "known@x.example", no_new)
    assert isinstance(again, Reservation)
    assert not again.new_recipient
    refused = _reserve(tenant.id, mailbox_id, "new@x.example", no_new)
    assert isinstance(refused, CapRefusal)
    assert refused.scope is CapScope.MAILBOX_NEW_DAY
    closed = _reserve(tenant.id, mailbox_id, "known@x.example", SendCaps(mailbox_daily=0))
    assert isinstance(closed, CapRefusal)
    assert closed.scope is CapScope.MAILBOX_DAY
    assert _counters(tenant.id)[CapScope.MAILBOX_DAY.value] == 2
    assert _counters(tenant.id)[CapScope.MAILBOX_NEW_DAY.value] == 1
    # The refused new recipient is still new.
    later = _reserve(tenant.id, mailbox_id, "new@x.example", SendCaps())
    assert isinstance(later, Reservation)
    assert later.new_recipient


def test_release_gives_every_slot_back_exactly_once(client: TestClient) -> None:
    tenant = new_tenant("caps-release")
    mailbox_id = _mailbox(tenant.id)
    send_caps = SendCaps(mailbox_daily=1, new_recipients=1)
    held = _reserve(tenant.id, mailbox_id, "r@x.example", send_caps, uuid.uuid4())
    assert isinstance(held, Reservation)
    assert isinstance(_reserve(tenant.id, mailbox_id, "s@x.example", send_caps), CapRefusal)
    with tenant_unit_of_work(tenant.id) as uow:
        assert caps.release(uow, held)
        assert not caps.release(uow, held.id)
    assert set(_counters(tenant.id).values()) == {0}
    # The released recipient is new again; a consumed reservation cannot be released.
    again = _reserve(tenant.id, mailbox_id, "r@x.example", send_caps)
    assert isinstance(again, Reservation)
    assert again.new_recipient
    with tenant_unit_of_work(tenant.id) as uow:
        assert caps.consume(uow, again)
        assert not caps.release(uow, again)
    assert _counters(tenant.id)[CapScope.MAILBOX_DAY.value] == 1


def test_health_and_reduced_caps_lower_the_mailboxs_own(client: TestClient) -> None:
    tenant = new_tenant("caps-health")
    mailbox_id = _mailbox(tenant.id, daily_cap=40, hourly_cap=10, new_recipients_cap=20)
    with tenant_unit_of_work(tenant.id) as uow:
        caps.record_health(uow, mailbox_id, sent=1000, bounces=30, complaints=0)
        mailbox = caps.get_mailbox(uow, mailbox_id)
        assert mailbox.health_status == "throttle"
        throttled = caps.mailbox_caps(mailbox, reduced_hourly=3, tenant_daily=500)
        assert throttled == SendCaps(
            mailbox_daily=20, mailbox_hourly=3, new_recipients=10, tenant_daily=500
        )
        caps.record_health(uow, mailbox_id, sent=1000, bounces=0, complaints=5)
        assert caps.mailbox_caps(caps.get_mailbox(uow, mailbox_id)).mailbox_daily == 0


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    daily=st.integers(1, 12),
    hourly=st.integers(1, 12),
    new=st.integers(1, 10),
    tenant_cap=st.integers(1, 15),
    campaign_cap=st.none() | st.integers(1, 12),
    recipients=st.lists(st.integers(0, 14), min_size=5, max_size=40),
    threads=st.integers(2, 8),
)
def test_concurrent_reservations_never_exceed_any_cap(
    client: TestClient,
    daily: int,
    hourly: int,
    new: int,
    tenant_cap: int,
    campaign_cap: int | None,
    recipients: list[int],
    threads: int,
) -> None:
    tenant = new_tenant("caps-prop")
    mailbox_id = _mailbox(tenant.id)
    campaign = uuid.uuid4()
    send_caps = SendCaps(
        mailbox_daily=daily,
        mailbox_hourly=hourly,
        new_recipients=new,
        tenant_daily=tenant_cap,
        campaign_daily=campaign_cap,
    )
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(
            pool.map(
                lambda r: _reserve(tenant.id, mailbox_id, f"p{r}@x.example", send_caps, campaign),
                recipients,
            )
        )
    held = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, CapRefusal)]
    counters = _counters(tenant.id)
    limits = {
        CapScope.MAILBOX_DAY: daily,
        CapScope.MAILBOX_HOUR: hourly,
        CapScope.MAILBOX_NEW_DAY: new,
        CapScope.TENANT_DAY: tenant_cap,
        CapScope.CAMPAIGN_DAY: campaign_cap,
    }
    for scope, limit in limits.items():
        if limit is not None:
            assert counters.get(scope.value, 0) <= limit, (scope, counters)
    assert counters[CapScope.MAILBOX_DAY.value] == len(held)
    assert counters.get(CapScope.MAILBOX_NEW_DAY.value, 0) == sum(r.new_recipient for r in held)
    assert len({r.recipient for r in held if r.new_recipient}) == sum(r.new_recipient for r in held)
    # A refusal happens only at the cap it names, never below it.
    for refusal in refused:
        assert counters.get(refusal.scope.value, 0) == limits[refusal.scope]
