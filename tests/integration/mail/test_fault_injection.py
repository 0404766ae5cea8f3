"""20% injected provider faults (429, 5xx, timeouts, accepted-but-unknown) over 300 sends,
driven the way activities are: deliver and reconcile called by a loop that obeys the outcome's
next action and wait. Expected: 0 duplicate Message-IDs in the sandbox, every intent ends sent
or held with a reason, and every sent intent is in the sandbox exactly once."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

from sqlalchemy import func, select

from shared.audit.orm import AuditEvent
from shared.db.unit_of_work import tenant_unit_of_work
from shared.mail import sending
from shared.mail.orm import SendIntent
from shared.mail.sandbox import sent_message_ids, set_fault_plan
from shared.mail.schemas import FaultPlan, NextAction, SendIntentCreate, SendStatus
from tests.integration.mail.conftest import FakeClock, MailTenant

INTENTS = 300
FAULTS = FaultPlan(
    throttle_rate=0.05,
    unavailable_rate=0.05,
    timeout_rate=0.05,
    unknown_rate=0.05,
    retry_after_seconds=2,
    seed=20260302,
)
MAX_STEPS = 60


def _drive(tenant_id: uuid.UUID, intent_id: uuid.UUID, clock: FakeClock) -> tuple[str, int]:
    """What an orchestration does: call the next activity, wait on a durable timer between."""
    outcome = sending.deliver(tenant_id, intent_id, clock=clock)
    steps = 1
    while outcome.next_action is not NextAction.NONE:
        assert steps < MAX_STEPS, outcome
        clock.advance(outcome.retry_after_seconds or 0)
        if outcome.next_action is NextAction.RECONCILE:
            outcome = sending.reconcile(tenant_id, intent_id, clock=clock)
        else:
            outcome = sending.deliver(tenant_id, intent_id, clock=clock)
        steps += 1
    return outcome.status, steps


def test_twenty_percent_faults_yield_no_duplicates_and_no_lost_sends(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    started = time.perf_counter()
    with tenant_unit_of_work(mail_tenant.id) as uow:
        set_fault_plan(uow, mail_tenant.mailbox_id, FAULTS)
    campaign = uuid.uuid4()
    intent_ids = []
    with tenant_unit_of_work(mail_tenant.id) as uow:
        for n in range(INTENTS):
            prospect = uuid.uuid4()
            recorded = sending.record_send_intent(
                uow,
                SendIntentCreate(
                    idempotency_key=f"{campaign}:{prospect}:t1",
                    mailbox_id=mail_tenant.mailbox_id,
                    recipient=f"p{n}@buyer{n % 17}.example",
                    subject="Idea",
                    text="Hi, one idea.",
                    prospect_id=prospect,
                    step_id="t1",
                ),
            )
            intent_ids.append(recorded.intent.id)

    statuses: Counter[str] = Counter()
    steps = 0
    for intent_id in intent_ids:
        status, taken = _drive(mail_tenant.id, intent_id, clock)
        statuses[status] += 1
        steps += taken

    with tenant_unit_of_work(mail_tenant.id) as uow:
        sandbox_ids = sent_message_ids(uow, mail_tenant.mailbox_id)
        intents = {
            row.id: row
            for row in uow.session.scalars(
                uow.scoped(SendIntent).where(SendIntent.id.in_(intent_ids))
            )
        }
        audited = dict(
            uow.session.execute(
                select(AuditEvent.event_type, func.count()).group_by(AuditEvent.event_type)
            ).all()
        )
        unknown_outcomes = uow.session.scalar(
            select(func.count()).where(
                AuditEvent.event_type == "SEND_FAILED",
                AuditEvent.event_json["outcome"].astext == "unknown",
            )
        )

    duplicates = {mid: n for mid, n in Counter(sandbox_ids).items() if n > 1}
    assert duplicates == {}
    assert set(statuses) <= {SendStatus.SENT, SendStatus.HELD}
    for intent in intents.values():
        if intent.status == SendStatus.SENT:
            assert sandbox_ids.count(intent.message_id) == 1, intent.id
        else:
            assert intent.status == SendStatus.HELD
            assert intent.status_reason
    # The faults really happened, and both reconcile branches ran.
    assert audited.get("SEND_RECONCILED", 0) > 10
    assert unknown_outcomes
    assert unknown_outcomes > 20
    assert audited["SEND_ATTEMPTED"] > INTENTS
    print(
        json.dumps(
            {
                "intents": INTENTS,
                "fault_rate": 0.20,
                "sent": statuses[SendStatus.SENT],
                "held": statuses[SendStatus.HELD],
                "duplicates": len(duplicates),
                "provider_calls": audited["SEND_ATTEMPTED"],
                "unknown_outcomes": unknown_outcomes,
                "reconciles": audited.get("SEND_RECONCILED", 0),
                "activity_calls": steps,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    )
