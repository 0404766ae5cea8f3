"""The outbound gate end to end against the shipped default pack, one behaviour per test."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from shared.approvals import service as approvals
from shared.approvals.schemas import ApprovalRequest, ApproveBody
from shared.audit.schemas import Actor, ActorType
from shared.campaigns.orm import Campaign
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability import service as caps
from shared.deliverability import suppression
from shared.deliverability.schemas import SuppressionCreate
from shared.policy.gate import (
    GateOutcome,
    GateResult,
    SendRequest,
    check_send,
)
from shared.policy.kill_switch import activate_kill_switch
from shared.policy.schemas import KillSwitchChange
from tests.integration.gate.conftest import ACTOR, Sender, events, make_sender

MANAGER = Actor(type=ActorType.USER, id=str(uuid.uuid4()), display="manager")


def _check(sender: Sender, request: SendRequest) -> GateResult:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        return check_send(uow, request, ACTOR)


def _used(sender: Sender) -> int:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        return int(
            uow.execute(
                text("SELECT coalesce(sum(used), 0) FROM send_counters WHERE scope = 'mailbox_day'")
            ).scalar_one()
        )


def _matched(result: GateResult) -> set[str]:
    return {reason.rule_id for reason in result.decision.reasons}


def test_a_clean_follow_up_is_allowed_reserved_and_audited(sender: Sender) -> None:
    result = _check(sender, sender.request("Jane@Prospect.example"))
    assert result.outcome is GateOutcome.ALLOWED, result.decision.reasons
    assert result.reservation is not None
    assert result.reservation.recipient == "jane@prospect.example"
    assert _used(sender) == 1
    assert result.policy_input.recipient.domain == "prospect.example"
    assert result.policy_input.action.stage == "send"
    ((_, evaluated),) = events(sender.tenant_id, "POLICY_EVALUATED")
    assert evaluated["decision_id"] == result.decision.decision_id
    second = _check(sender, sender.request("jane@prospect.example"))
    assert second.policy_input.recipient.previously_contacted
    assert second.policy_input.mailbox.sent_today == 1


def test_counters_are_read_in_the_mailboxs_own_windows(database: object) -> None:
    # +05:45: neither its day nor its hour starts when UTC's do.
    sender = make_sender("gate-tz", time_zone="Asia/Kathmandu")
    assert _check(sender, sender.request("a@prospect.example")).allowed
    second = _check(sender, sender.request("b@prospect.example"))
    assert second.allowed
    assert second.policy_input.mailbox.time_zone == "Asia/Kathmandu"
    assert second.policy_input.mailbox.sent_today == 1
    assert second.policy_input.mailbox.sent_this_hour == 1
    assert second.policy_input.mailbox.new_recipients_today == 1


def test_an_unknown_mailbox_is_refused(sender: Sender) -> None:
    with pytest.raises(caps.MailboxNotFound):
        _check(sender, sender.request("a@prospect.example", mailbox_id=uuid.uuid4()))


def test_suppressed_recipients_are_denied_without_a_reservation(sender: Sender) -> None:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        suppression.add_suppression(uow, SuppressionCreate(value="blocked.example"), ACTOR)
    result = _check(sender, sender.request("ceo@eu.blocked.example"))
    assert result.outcome is GateOutcome.DENIED
    assert "suppressed-recipient" in _matched(result)
    assert result.reservation is None
    assert _used(sender) == 0
    with tenant_unit_of_work(sender.tenant_id) as uow:
        suppression.unsubscribe(uow, "gone@prospect.example", ACTOR)
    unsubscribed = _check(sender, sender.request("gone@prospect.example"))
    assert unsubscribed.policy_input.recipient.unsubscribed
    assert unsubscribed.outcome is GateOutcome.DENIED


def test_risky_content_is_denied(sender: Sender) -> None:
    base = sender.request("a@prospect.example")
    card = sender.request("a@prospect.example", body=base.body + "\nCard 4111 1111 1111 1111")
    result = _check(sender, card)
    assert result.outcome is GateOutcome.DENIED
    assert "content-financial-pii" in _matched(result)
    no_footer = _check(sender, sender.request("a@prospect.example", body="Hi {{first_name}}"))
    assert {
        "content-missing-unsubscribe",
        "content-missing-postal-address",
        "content-unresolved-variables",
    } <= _matched(no_footer)
    assert _used(sender) == 0


def test_a_first_touch_needs_its_approval_or_an_approved_template(sender: Sender) -> None:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        campaign = uow.add(
            Campaign(
                name="c", status="active", settings={"mode": "full", "canary": {"enabled": False}}
            )
        )
        uow.flush()
        campaign_id = campaign.id
    first = sender.request("new@prospect.example", touch_number=1, campaign_id=campaign_id)
    assert _check(sender, first).outcome is GateOutcome.APPROVAL_REQUIRED
    with tenant_unit_of_work(sender.tenant_id) as uow:
        approval = approvals.request_approval(
            uow,
            ApprovalRequest(
                action_kind="send",
                action_id=first.action_id,
                campaign_id=campaign_id,
                sequence_step=1,
                template_hash="t1",
                mode="once",
            ),
            ACTOR,
        )
        approvals.approve(uow, approval.id, ApproveBody(), MANAGER, None)
    approved = first.model_copy(update={"approval_id": approval.id})
    assert _check(sender, approved).outcome is GateOutcome.ALLOWED
    # "Approve once": another prospect's draft of the same step and template needs no approval.
    same_template = sender.request(
        "other@prospect.example",
        touch_number=1,
        campaign_id=campaign_id,
        sequence_step=1,
        template_hash="t1",
        approval_mode="once",
    )
    result = _check(sender, same_template)
    assert result.policy_input.action.step_template_approved
    assert result.outcome is GateOutcome.ALLOWED
    changed = same_template.model_copy(
        update={"template_hash": "t2", "recipient": "third@prospect.example"}
    )
    assert _check(sender, changed).outcome is GateOutcome.APPROVAL_REQUIRED


def test_a_full_cap_refuses_the_send_and_audits_it(database: object) -> None:
    sender = make_sender("gate-cap", daily_cap=1)
    assert _check(sender, sender.request("a@prospect.example")).allowed
    refused = _check(sender, sender.request("b@prospect.example"))
    assert refused.outcome is GateOutcome.CAP_REFUSED
    assert refused.decision.allowed
    assert refused.cap_refusal is not None
    assert refused.cap_refusal.scope == "mailbox_day"
    ((_, event),) = events(sender.tenant_id, "SEND_CAP_REFUSED")
    assert event["decision_id"] == refused.decision.decision_id
    assert _used(sender) == 1


def test_concurrent_checks_hold_exactly_the_cap(database: object) -> None:
    # The reservation rides on the decision's audit statement: under concurrency the
    # counters, reservation rows and allowed results still agree, and nothing overshoots.
    sender = make_sender("gate-race", new_recipients_cap=5, daily_cap=8)
    recipients = [f"r{i % 12}@prospect{i % 3}.example" for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda r: _check(sender, sender.request(r)), recipients))
    allowed = [r for r in results if r.allowed]
    refused = [r for r in results if r.outcome is GateOutcome.CAP_REFUSED]
    assert len(allowed) + len(refused) == len(results)
    assert len(allowed) == 8
    assert sum(bool(r.reservation and r.reservation.new_recipient) for r in allowed) <= 5
    assert _used(sender) == len(allowed)
    with tenant_unit_of_work(sender.tenant_id) as uow:
        held = uow.execute(text("SELECT count(*) FROM send_reservations")).scalar_one()
        new = uow.execute(
            text("SELECT coalesce(sum(used), 0) FROM send_counters WHERE scope = 'mailbox_new_day'")
        ).scalar_one()
    assert held == len(allowed)
    assert new == sum(bool(r.reservation and r.reservation.new_recipient) for r in allowed)
    assert len(events(sender.tenant_id, "POLICY_EVALUATED")) == len(results)
    assert len(events(sender.tenant_id, "SEND_CAP_REFUSED")) == len(refused)


def test_a_tenant_daily_cap_from_settings_applies(database: object) -> None:
    sender = make_sender("gate-tenant-cap", tenant_settings={"daily_send_cap": 1})
    assert _check(sender, sender.request("a@prospect.example")).allowed
    refused = _check(sender, sender.request("b@prospect.example"))
    assert refused.cap_refusal is not None
    assert refused.cap_refusal.scope == "tenant_day"


def test_poor_health_throttles_through_the_policy(sender: Sender) -> None:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        caps.record_health(uow, sender.mailbox_id, sent=1000, bounces=100, complaints=0)
    result = _check(sender, sender.request("a@prospect.example"))
    assert "throttle-poor-mailbox-health" in _matched(result)
    # Health "pause" takes the mailbox's own caps to zero, whatever the policy allows.
    assert result.outcome is GateOutcome.CAP_REFUSED


def test_kill_switch_denies(sender: Sender) -> None:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        activate_kill_switch(uow, KillSwitchChange(reason="test"), MANAGER)
    result = _check(sender, sender.request("a@prospect.example"))
    assert result.outcome is GateOutcome.DENIED
    assert result.policy_input.tenant.kill_switch_active
    assert "kill-switch-tenant" in _matched(result)


def test_pilot_campaigns_reach_only_allowlisted_domains(sender: Sender) -> None:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        campaign = uow.add(
            Campaign(
                name="pilot",
                status="active",
                settings={
                    "mode": "pilot",
                    "constraints": {"allowed_domains": ["friendly.example"]},
                    "canary": {"enabled": False},
                },
            )
        )
        uow.flush()
        campaign_id = campaign.id
    inside = _check(sender, sender.request("x@eu.friendly.example", campaign_id=campaign_id))
    outside = _check(sender, sender.request("x@stranger.example", campaign_id=campaign_id))
    assert inside.outcome is GateOutcome.ALLOWED
    assert outside.outcome is GateOutcome.DENIED
    assert "pilot-allowlisted-domains-only" in _matched(outside)


FULL_NO_CANARY = {"mode": "full", "canary": {"enabled": False}}


def test_a_campaign_kill_switch_denies_that_campaign_only(sender: Sender) -> None:
    with tenant_unit_of_work(sender.tenant_id) as uow:
        stopped, running = (
            uow.add(Campaign(name=name, status="active", settings=FULL_NO_CANARY))
            for name in ("stopped", "running")
        )
        uow.flush()
        stopped_id, running_id = stopped.id, running.id
    with tenant_unit_of_work(sender.tenant_id) as uow:
        activate_kill_switch(uow, KillSwitchChange(campaign_id=stopped_id, reason="t"), MANAGER)
    denied = _check(sender, sender.request("a@prospect.example", campaign_id=stopped_id))
    allowed = _check(sender, sender.request("a@prospect.example", campaign_id=running_id))
    assert denied.outcome is GateOutcome.DENIED
    assert denied.policy_input.campaign.kill_switch_active
    assert not denied.policy_input.tenant.kill_switch_active
    assert allowed.outcome is GateOutcome.ALLOWED, allowed.decision.reasons
    assert allowed.policy_input.campaign.id == str(running_id)


def test_each_decision_is_audited_under_the_journeys_correlation_id(database: object) -> None:
    sender = make_sender("gate-correlation", daily_cap=1)
    allowed = _check(sender, sender.request("a@prospect.example", correlation_id="journey-a"))
    denied = _check(sender, sender.request("b@agency.gov", correlation_id="journey-b"))
    refused = _check(sender, sender.request("c@prospect.example", correlation_id="journey-c"))
    assert (allowed.allowed, denied.outcome, refused.outcome) == (
        True,
        GateOutcome.DENIED,
        GateOutcome.CAP_REFUSED,
    )
    with tenant_unit_of_work(sender.tenant_id) as uow:
        audited = uow.execute(
            text(
                "SELECT event_type, correlation_id FROM audit_events"
                " WHERE event_type IN ('POLICY_EVALUATED', 'SEND_CAP_REFUSED') ORDER BY seq"
            )
        ).all()
    assert [tuple(row) for row in audited] == [
        ("POLICY_EVALUATED", "journey-a"),
        ("POLICY_EVALUATED", "journey-b"),
        ("POLICY_EVALUATED", "journey-c"),
        ("SEND_CAP_REFUSED", "journey-c"),
    ]
