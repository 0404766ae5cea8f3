"""Table-driven tests for every rule of the shipped default pack and the deal boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.policy.model import evaluate, matched_rules
from shared.policy.packs import default_pack
from shared.policy.schemas import Decision
from tests.unit.policy.inputs import CLEAN_SEND, POSITIVE_REPLY_DEAL, policy_input


@dataclass(frozen=True)
class Case:
    name: str
    rule: str | None  # the shipped rule this case proves (None: no rule should match)
    changes: dict[str, Any]
    expect: dict[str, Any]
    base: dict[str, Any] = field(default_factory=lambda: CLEAN_SEND)
    matches: bool = True


DRAFT = {"type": "send", "stage": "draft"}
FIRST_TOUCH = {"is_first_touch": True, "touch_number": 1, "sequence_step": 1}

CASES = [
    Case("clean follow-up send is allowed", None, {}, {"allowed": True}),
    Case(
        "tenant kill switch denies a send",
        "kill-switch-tenant",
        {"tenant": {"kill_switch_active": True}},
        {"allowed": False},
    ),
    Case(
        "tenant kill switch denies a deal too",
        "kill-switch-tenant",
        {"tenant": {"kill_switch_active": True}},
        {"allowed": False, "deal_create_allowed": False},
        base=POSITIVE_REPLY_DEAL,
    ),
    Case(
        "campaign kill switch denies",
        "kill-switch-campaign",
        {"campaign": {"kill_switch_active": True}},
        {"allowed": False},
    ),
    Case(
        "first touch needs approval",
        "first-touch-approval",
        {"action": {**DRAFT, **FIRST_TOUCH}},
        {"allowed": True, "approval_required": True},
    ),
    Case(
        "first touch approved once for the step goes without approval",
        "first-touch-approval",
        {
            "action": {
                **DRAFT,
                **FIRST_TOUCH,
                "approval_mode": "once",
                "step_template_approved": True,
            }
        },
        {"allowed": True, "approval_required": False},
        matches=False,
    ),
    Case(
        "approve once without an approved template still needs approval",
        "first-touch-approval",
        {"action": {**DRAFT, **FIRST_TOUCH, "approval_mode": "once"}},
        {"approval_required": True},
    ),
    Case(
        "a follow-up is no first touch",
        "first-touch-approval",
        {},
        {"approval_required": False},
        matches=False,
    ),
    Case(
        ".gov recipient denied",
        "no-government-recipients",
        {"recipient": {"email": "a@agency.gov", "domain": "agency.gov", "tld": "gov"}},
        {"allowed": False},
    ),
    Case(
        ".mil recipient denied",
        "no-government-recipients",
        {"recipient": {"email": "a@army.mil", "domain": "army.mil", "tld": "mil"}},
        {"allowed": False},
    ),
    Case(
        "upper-case .GOV denied",
        "no-government-recipients",
        {"recipient": {"email": "A@State.GOV", "domain": "State.GOV", "tld": ""}},
        {"allowed": False},
    ),
    Case(
        "only the email says .gov",
        "no-government-recipients",
        {"recipient": {"email": "a@dept.gov", "domain": "", "tld": ""}},
        {"allowed": False},
    ),
    Case(
        "gov inside a name is not a government domain",
        "no-government-recipients",
        {"recipient": {"email": "a@govtech.com", "domain": "govtech.com", "tld": "com"}},
        {"allowed": True},
        matches=False,
    ),
    Case(
        "suppressed recipient denied",
        "suppressed-recipient",
        {"recipient": {"suppressed": True, "suppression_scope": "domain"}},
        {"allowed": False},
    ),
    Case(
        "unsubscribed recipient denied at draft time",
        "suppressed-recipient",
        {"action": DRAFT, "recipient": {"unsubscribed": True}},
        {"allowed": False},
    ),
    Case(
        "bounced address denied",
        "previously-bounced-recipient",
        {"recipient": {"bounced_before": True}},
        {"allowed": False},
    ),
    Case(
        "40th new recipient of the day denied",
        "new-recipients-daily-cap",
        {"recipient": {"previously_contacted": False}, "mailbox": {"new_recipients_today": 40}},
        {"allowed": False},
    ),
    Case(
        "39 new recipients so far: one more allowed",
        "new-recipients-daily-cap",
        {"recipient": {"previously_contacted": False}, "mailbox": {"new_recipients_today": 39}},
        {"allowed": True},
        matches=False,
    ),
    Case(
        "cap counts new recipients only",
        "new-recipients-daily-cap",
        {"mailbox": {"new_recipients_today": 40}},
        {"allowed": True},
        matches=False,
    ),
    Case(
        "poor mailbox health throttles",
        "throttle-poor-mailbox-health",
        {"mailbox": {"health_score": 0.4}},
        {"allowed": True, "reduced_caps": {"daily": 20, "hourly": 5, "new_recipients": 10}},
    ),
    Case(
        "complaint rate over 0.3% throttles",
        "throttle-poor-mailbox-health",
        {"mailbox": {"complaint_rate": 0.004}},
        {"reduced_caps": {"daily": 20, "hourly": 5, "new_recipients": 10}},
    ),
    Case(
        "pilot campaign: allowlisted subdomain allowed",
        "pilot-allowlisted-domains-only",
        {
            "campaign": {"mode": "pilot", "allowed_domains": ["acme.com"]},
            "recipient": {"email": "jo@eu.acme.com", "domain": "eu.acme.com"},
        },
        {"allowed": True},
        matches=False,
    ),
    Case(
        "pilot campaign: other domain denied",
        "pilot-allowlisted-domains-only",
        {"campaign": {"mode": "pilot", "allowed_domains": ["initech.com"]}},
        {"allowed": False},
    ),
    Case(
        "pilot campaign: look-alike domain denied",
        "pilot-allowlisted-domains-only",
        {
            "campaign": {"mode": "pilot", "allowed_domains": ["acme.com"]},
            "recipient": {"email": "jo@notacme.com", "domain": "notacme.com"},
        },
        {"allowed": False},
    ),
    Case(
        "excluded domain denied",
        "campaign-excluded-domain",
        {"campaign": {"excluded_domains": ["acme.com"]}},
        {"allowed": False},
    ),
    Case(
        "canary not passed requires canary",
        "canary-first",
        {"campaign": {"canary_enabled": True}},
        {"allowed": True, "require_canary": True},
    ),
    Case(
        "draft-only tenant: no send",
        "draft-only-mode",
        {"tenant": {"draft_only": True}},
        {"allowed": False},
    ),
    Case(
        "draft-only campaign: drafting still allowed",
        "draft-only-mode",
        {"action": DRAFT, "campaign": {"draft_only": True}},
        {"allowed": True},
        matches=False,
    ),
    Case(
        "claims without evidence denied",
        "evidence-required-for-claims",
        {"evidence": {"factual_claims": 2, "claims_without_evidence": 1, "evidence_count": 1}},
        {"allowed": False},
    ),
    Case(
        "card number in content denied",
        "content-financial-pii",
        {"content": {"pii_types": ["card"]}},
        {"allowed": False},
    ),
    Case(
        "IBAN in content denied",
        "content-financial-pii",
        {"content": {"pii_types": ["iban"]}},
        {"allowed": False},
    ),
    Case(
        "phone number in content goes to manual review",
        "content-contact-pii",
        {"content": {"pii_types": ["phone"]}},
        {"allowed": True, "require_manual_review": True},
    ),
    Case(
        "prohibited claim denied",
        "content-prohibited-claims",
        {"content": {"prohibited_claims": ["guaranteed ROI"]}},
        {"allowed": False},
    ),
    Case(
        "missing unsubscribe denied",
        "content-missing-unsubscribe",
        {"content": {"missing_unsubscribe": True}},
        {"allowed": False},
    ),
    Case(
        "missing postal address denied",
        "content-missing-postal-address",
        {"content": {"missing_postal_address": True}},
        {"allowed": False},
    ),
    Case(
        "unresolved variables denied",
        "content-unresolved-variables",
        {"content": {"unresolved_variables": ["first_name"]}},
        {"allowed": False},
    ),
    Case(
        "sending never creates a deal, even with a positive reply in the input",
        "deal-never-from-sending",
        {"reply": {"classification": "positive", "confidence": 0.99}, "deal": {"source": "reply"}},
        {"allowed": True, "deal_create_allowed": False},
    ),
    Case(
        "deal without a reply or meeting source denied",
        "deal-only-from-reply-or-meeting",
        {"deal": {"source": ""}},
        {"deal_create_allowed": False},
        base=POSITIVE_REPLY_DEAL,
    ),
    *[
        Case(
            f"{label} reply never creates a deal",
            "deal-never-on-negative-signals",
            {"reply": {"classification": label, "confidence": 0.99}},
            {"deal_create_allowed": False, "deal_create_requires_approval": False},
            base=POSITIVE_REPLY_DEAL,
        )
        for label in ("unsubscribe", "ooo", "bounce", "complaint")
    ],
    Case(
        "neutral reply creates no deal",
        "deal-reply-not-positive",
        {"reply": {"classification": "neutral", "confidence": 0.95}},
        {"deal_create_allowed": False},
        base=POSITIVE_REPLY_DEAL,
    ),
    Case(
        "positive reply on the first touch may create a deal",
        "deal-positive-reply-auto",
        {"reply": {"touch_number": 1}},
        {"allowed": True, "deal_create_allowed": True, "deal_create_requires_approval": False},
        base=POSITIVE_REPLY_DEAL,
    ),
    Case(
        "booked meeting creates a deal",
        "deal-from-meeting",
        {"deal": {"source": "meeting"}, "reply": {"classification": "", "confidence": 0.0}},
        {"deal_create_allowed": True, "deal_create_requires_approval": False},
        base=POSITIVE_REPLY_DEAL,
    ),
    Case(
        "existing deal in the dedupe window: no second deal",
        "deal-dedupe-window",
        {"deal": {"existing_deal_in_window": True, "existing_deal_id": "d-1"}},
        {"deal_create_allowed": False},
        base=POSITIVE_REPLY_DEAL,
    ),
]

DEAL_BOUNDARIES = [
    (0.0, False, False, "deal-low-confidence"),
    (0.649, False, False, "deal-low-confidence"),
    (0.65, True, True, "deal-positive-reply-approval"),
    (0.849, True, True, "deal-positive-reply-approval"),
    (0.85, True, False, "deal-positive-reply-auto"),
    (1.0, True, False, "deal-positive-reply-auto"),
]


def _check(decision: Decision, expect: dict[str, Any]) -> None:
    dumped = decision.model_dump(mode="json")
    for key, value in expect.items():
        if key == "reduced_caps":
            assert dumped["reduced_caps"] == value
        else:
            assert dumped[key] == value, key


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_default_pack_rule(case: Case) -> None:
    decision = evaluate(default_pack(), policy_input(case.base, **case.changes))
    _check(decision, case.expect)
    matched = matched_rules(decision)
    if case.rule is not None:
        assert (case.rule in matched) is case.matches, matched
    assert all(entry.error is None for entry in decision.trace)
    assert len(decision.trace) == len(default_pack().rules)


@pytest.mark.parametrize(("confidence", "allowed", "approval", "rule"), DEAL_BOUNDARIES)
def test_deal_gating_boundaries(
    confidence: float, allowed: bool, approval: bool, rule: str
) -> None:
    decision = evaluate(
        default_pack(), policy_input(POSITIVE_REPLY_DEAL, reply={"confidence": confidence})
    )
    assert decision.deal_create_allowed is allowed
    assert decision.deal_create_requires_approval is approval
    assert rule in matched_rules(decision)
    assert decision.allowed is True


def test_every_shipped_rule_has_a_case_that_matches_it() -> None:
    proven = {case.rule for case in CASES if case.matches} | {rule for *_, rule in DEAL_BOUNDARIES}
    shipped = {compiled.rule.id for compiled in default_pack().rules}
    assert shipped - proven == set()


def test_policy_runs_at_draft_and_at_send_with_different_answers() -> None:
    """ARCHITECTURE.md §6: the cap that was fine when drafting denies at send time."""
    over_cap = {"recipient": {"previously_contacted": False}}
    at_draft = evaluate(
        default_pack(),
        policy_input(action=DRAFT, mailbox={"new_recipients_today": 40}, **over_cap),
    )
    at_send = evaluate(
        default_pack(),
        policy_input(mailbox={"new_recipients_today": 40}, **over_cap),
    )
    assert at_draft.allowed is True
    assert at_send.allowed is False
