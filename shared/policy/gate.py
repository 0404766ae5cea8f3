"""The outbound gate: the one check every send passes, at the moment of sending.

`check_send` runs in the caller's unit of work (the send activity's one transaction) and, in
order: takes the kill switch's share lock and reads it; reads the mailbox, the recipient's
suppression status and history, the current counters, the draft's content risk and the
approval behind it; builds the `PolicyInput`; evaluates it; and records the decision (its
POLICY_EVALUATED event and decision row) together with, only when the decision allows the
send, the send slot's reservation under the caps in force. If the reservation fails, the
send is refused and the refusal is audited. The reads are one statement (two for a
campaign's send: its own switch, row and approved template are read after the lock) and the
writes another, all run on the unit of work's driver connection (`fetch_one`): at hundreds
of sends per second, round trips and per-statement client work are most of the cost.

Everything commits together: an allowed result and its reservation exist only if the whole
transaction commits, and the kill switch's share lock is held until then, so an activation
(which updates that row) waits for in-flight checks and every check after it sees it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import text

from shared.approvals.orm import Approval
from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.campaigns.schemas import CampaignMode, CampaignSettings
from shared.config import get_settings
from shared.db.unit_of_work import TenantUnitOfWork
from shared.deliverability import service as caps
from shared.deliverability.model import (
    CapScope,
    MailboxSnapshot,
    domain_and_parents,
    domain_of,
    normalize_address,
)
from shared.deliverability.schemas import (
    CapRefusal,
    CounterKey,
    MailboxUsage,
    Reservation,
    SuppressionStatus,
)
from shared.drafting.risk import DraftText, RiskSettings, assess_content
from shared.errors import NotFound, ValidationFailed
from shared.policy import repository as policy_repository
from shared.policy.kill_switch import DecisionGuard, guard_after_lock, guard_with_campaign_state
from shared.policy.repository import ActiveRef
from shared.policy.schemas import (
    ActionInput,
    ActionType,
    ActorInput,
    CampaignInput,
    Decision,
    EvidenceInput,
    MailboxInput,
    PolicyInput,
    RecipientInput,
    Stage,
    TenantInput,
)
from shared.policy.service import decide, prepare_decision, record_decision

Clock = Callable[[], datetime]
TENANT_DAILY_CAP_SETTING = "daily_send_cap"
CAMPAIGN_DAILY_CAP_SETTING = "daily_send_cap"


class GateOutcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    APPROVAL_REQUIRED = "approval_required"
    CANARY_REQUIRED = "canary_required"
    CAP_REFUSED = "cap_refused"


class SendRequest(BaseModel):
    """One message about to be handed to a mailbox provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action_id: str = Field(min_length=1, max_length=200, description="The send intent's id")
    mailbox_id: uuid.UUID
    recipient: str
    campaign_id: uuid.UUID | None = None
    prospect_id: uuid.UUID | None = None
    sequence_step: int = Field(default=0, ge=0)
    touch_number: int = Field(default=1, ge=1)
    template_hash: str | None = None
    approval_mode: Literal["once", "every_time"] = "every_time"
    approval_id: uuid.UUID | None = Field(
        default=None, description="The approval granted for this message, if one was asked for"
    )
    subject: str
    body: str
    evidence: EvidenceInput = Field(default_factory=EvidenceInput)
    recipient_region: str = ""
    replied_before: bool = False
    bounced_before: bool = False
    canary_send: bool = Field(default=False, description="Part of the campaign's canary batch")
    canary_passed: bool = False
    correlation_id: str | None = Field(
        default=None,
        max_length=200,
        description="The journey's correlation id: the decision's audit event carries it",
    )


class GateResult(BaseModel):
    outcome: GateOutcome
    decision: Decision
    reservation: Reservation | None = None
    cap_refusal: CapRefusal | None = None
    policy_input: PolicyInput

    @property
    def allowed(self) -> bool:
        return self.outcome is GateOutcome.ALLOWED


class GateRequestInvalid(ValidationFailed):
    code = "send_request_invalid"
    title = "Send request invalid"


# The reads a send decision needs, in one round trip: the decision guard (the tenant's
# kill switch row, locked FOR SHARE, and the active pack), the mailbox row, the tenant's
# settings, the current windows' counters, the most specific suppression entry and whether
# this mailbox wrote to the recipient before. The gate runs once per message, and at a
# few hundred sends per second every round trip shows. Only the switch row is locked: after
# waiting for an activation, its new state is what the decision sees, while the other reads
# are as of the statement's start, as if they had been made just before the lock.
# Columns by position (the statement runs on the driver connection, rows are tuples): the
# guard's four, then the mailbox's in `MailboxSnapshot` order, then the rest.
_GUARD_WIDTH = 4
_MAILBOX_FIELDS = tuple(MailboxSnapshot.__dataclass_fields__)
_MAILBOX_END = _GUARD_WIDTH + len(_MAILBOX_FIELDS)
_TIME_ZONE_AT = _GUARD_WIDTH + _MAILBOX_FIELDS.index("time_zone")
_SEND_CONTEXT = text(
    f"""
    SELECT
      {policy_repository.GUARD_COLUMNS},
      {", ".join(f"m.{name}" for name in _MAILBOX_FIELDS)},
      t.settings, t.plan,
      (SELECT coalesce(json_object_agg(c.scope, c.used), '{{}}'::json)
         FROM jsonb_to_recordset(CAST(:keys AS jsonb))
              AS w(scope text, scope_key text, window_start timestamptz)
         JOIN send_counters c
           ON c.tenant_id = :tenant_id AND c.scope = w.scope AND c.scope_key = w.scope_key
          AND c.window_start = w.window_start) AS counters,
      (SELECT json_build_object('id', s.id, 'kind', s.kind, 'reason', s.reason)
         FROM suppressions s
        WHERE s.tenant_id = :tenant_id
          AND ((s.kind = 'address' AND s.value = :address)
               OR (s.kind = 'domain' AND s.value = ANY(CAST(:domains AS text[]))))
        ORDER BY s.kind <> 'address', length(s.value) DESC
        LIMIT 1) AS suppression,
      EXISTS (SELECT 1 FROM mailbox_recipients r
               WHERE r.tenant_id = :tenant_id AND r.mailbox_id = :mailbox_id
                 AND r.address = :address) AS contacted
    FROM {policy_repository.GUARD_FROM}
    LEFT JOIN mailboxes m ON m.tenant_id = k.tenant_id AND m.id = :mailbox_id
    LEFT JOIN tenants t ON t.id = k.tenant_id
    WHERE {policy_repository.GUARD_WHERE}
    {policy_repository.GUARD_LOCK}
    """
)
# Counter windows are the mailbox's local day and hour, and its time zone comes with the
# row the same statement reads: the statement uses the zone this process last saw for the
# mailbox and is repeated, once, when the row says otherwise.
_TIME_ZONES: dict[uuid.UUID, str] = {}
_TIME_ZONES_MAX = 10_000
# Validating an address costs ~0.1 ms, follow-ups go to the same addresses again, and the
# result depends on the string alone (errors are not cached).
_normalized_address = lru_cache(maxsize=8_192)(normalize_address)


@dataclass(frozen=True)
class _SendContext:
    tenant_settings: dict[str, Any]
    tenant_plan: str
    usage: MailboxUsage
    suppression: SuppressionStatus
    previously_contacted: bool
    # The windows `usage` was read in (the mailbox's zone, the decision's clock reading):
    # the reservation takes its slot in the same ones.
    counter_keys: list[CounterKey]


def _read_send_context(
    uow: TenantUnitOfWork,
    mailbox_id: uuid.UUID,
    zone: str,
    recipient: str,
    campaign_id: uuid.UUID | None,
    now: datetime,
) -> tuple[tuple[Any, ...] | None, list[CounterKey]]:
    keys = caps.mailbox_counter_keys(mailbox_id, zone, campaign_id, now, new_recipient=True)
    row = uow.fetch_one(
        _SEND_CONTEXT,
        {
            "tenant_id": uow.tenant_id,
            "mailbox_id": mailbox_id,
            "address": recipient,
            "domains": domain_and_parents(domain_of(recipient)),
            "keys": json.dumps(
                [
                    {
                        "scope": k.scope.value,
                        "scope_key": k.scope_key,
                        "window_start": k.window_start.isoformat(),
                    }
                    for k in keys
                ]
            ),
        },
    )
    return row, keys


def _send_context(
    uow: TenantUnitOfWork,
    mailbox_id: uuid.UUID,
    recipient: str,
    campaign_id: uuid.UUID | None,
    now: datetime,
) -> tuple[tuple[bool, ActiveRef | None], MailboxSnapshot, _SendContext]:
    """(the tenant switch's state and the active pack, read under the switch's share lock),
    the mailbox and the rest of the send context."""
    zone = _TIME_ZONES.get(mailbox_id, "UTC")
    row, keys = _read_send_context(uow, mailbox_id, zone, recipient, campaign_id, now)
    if row is None:
        policy_repository.create_tenant_switch(uow)
        row, keys = _read_send_context(uow, mailbox_id, zone, recipient, campaign_id, now)
        assert row is not None  # the switch row exists now
    while row[_GUARD_WIDTH] is not None and row[_TIME_ZONE_AT] != zone:
        if len(_TIME_ZONES) >= _TIME_ZONES_MAX:
            _TIME_ZONES.clear()
        zone = _TIME_ZONES[mailbox_id] = row[_TIME_ZONE_AT]
        row, keys = _read_send_context(uow, mailbox_id, zone, recipient, campaign_id, now)
        assert row is not None
    locked = policy_repository.guard_from_values(*row[:_GUARD_WIDTH])
    if row[_GUARD_WIDTH] is None:
        raise caps.MailboxNotFound()
    settings, plan, used, found, contacted = row[_MAILBOX_END:]
    if plan is None:
        raise NotFound("Tenant not found.")
    mailbox = MailboxSnapshot(*row[_GUARD_WIDTH:_MAILBOX_END])
    return (
        locked,
        mailbox,
        _SendContext(
            tenant_settings=dict(settings or {}),
            tenant_plan=plan,
            usage=MailboxUsage(
                sent_today=used.get(CapScope.MAILBOX_DAY.value, 0),
                sent_this_hour=used.get(CapScope.MAILBOX_HOUR.value, 0),
                new_recipients_today=used.get(CapScope.MAILBOX_NEW_DAY.value, 0),
                campaign_today=used.get(CapScope.CAMPAIGN_DAY.value, 0),
                tenant_today=used.get(CapScope.TENANT_DAY.value, 0),
            ),
            suppression=SuppressionStatus(suppressed=False)
            if found is None
            else SuppressionStatus(
                suppressed=True,
                scope=found["kind"],
                reason=found["reason"],
                suppression_id=uuid.UUID(found["id"]),
            ),
            previously_contacted=bool(contacted),
            counter_keys=keys,
        ),
    )


@dataclass(frozen=True)
class _CampaignRow:
    """What a send decision reads of its campaign."""

    id: uuid.UUID
    status: str
    settings: dict[str, Any]


# A campaign's reads, in one statement after the send context's, so after the tenant
# switch's share lock: the campaign's own switch (a statement that starts after the lock sees
# any activation the lock waited for, as `kill_switch.take_decision_guard` reads it), the
# campaign row, and whether the step's template is approved ("approve once").
_CAMPAIGN_CONTEXT = text(
    """
    SELECT coalesce(s.active, false), c.id, c.status, c.settings,
           EXISTS (SELECT 1 FROM approved_step_templates a
                    WHERE a.tenant_id = :tenant_id AND a.campaign_id = :campaign_id
                      AND a.sequence_step = :sequence_step
                      AND a.template_hash = :template_hash AND a.revoked_at IS NULL)
    FROM (SELECT 1) AS one
    LEFT JOIN campaign_kill_switches s
           ON s.tenant_id = :tenant_id AND s.campaign_id = :campaign_id
    LEFT JOIN campaigns c ON c.tenant_id = :tenant_id AND c.id = :campaign_id
    """
)


def _guard_and_campaign(
    uow: TenantUnitOfWork, request: SendRequest, locked: tuple[bool, ActiveRef | None]
) -> tuple[DecisionGuard, _CampaignRow | None, bool]:
    """The decision guard, the campaign and whether the step's template is approved."""
    tenant_active, active_pack = locked
    if request.campaign_id is None:
        return guard_after_lock(uow, None, tenant_active, active_pack), None, False
    row = uow.fetch_one(
        _CAMPAIGN_CONTEXT,
        {
            "tenant_id": uow.tenant_id,
            "campaign_id": request.campaign_id,
            "sequence_step": request.sequence_step,
            "template_hash": request.template_hash or None,
        },
    )
    assert row is not None  # one row whatever exists
    campaign_active, campaign_id, status, settings, template_approved = row
    guard = guard_with_campaign_state(
        uow, request.campaign_id, tenant_active, active_pack, bool(campaign_active)
    )
    campaign = (
        _CampaignRow(campaign_id, status, settings or {}) if campaign_id is not None else None
    )
    return guard, campaign, bool(request.template_hash) and bool(template_approved)


def _campaign_settings(campaign: _CampaignRow | None) -> tuple[CampaignSettings, dict[str, Any]]:
    if campaign is None:
        return CampaignSettings(mode=CampaignMode.FULL), {}
    raw = dict(campaign.settings or {})
    try:
        return CampaignSettings.model_validate(raw), raw
    except ValidationError:
        # A campaign whose settings no longer validate is held to the strictest reading.
        return CampaignSettings(mode=CampaignMode.PILOT, draft_only=True), raw


def _optional_cap(settings: dict[str, Any], key: str) -> int | None:
    value = settings.get(key)
    return int(value) if isinstance(value, int) and value >= 0 else None


def _approval_granted(uow: TenantUnitOfWork, request: SendRequest) -> bool:
    if request.approval_id is None:
        return False
    approval = uow.get(Approval, request.approval_id)
    return (
        approval is not None
        and approval.status == "approved"
        and approval.campaign_id == request.campaign_id
        and (approval.prospect_id is None or approval.prospect_id == request.prospect_id)
    )


def build_policy_input(
    uow: TenantUnitOfWork,
    request: SendRequest,
    actor: Actor,
    *,
    mailbox: MailboxSnapshot,
    recipient: str,
    kill_switches: tuple[bool, bool],
    context: _SendContext,
    campaign: _CampaignRow | None,
    template_approved: bool,
) -> PolicyInput:
    tenant_active, campaign_active = kill_switches
    tenant_settings, usage, status = context.tenant_settings, context.usage, context.suppression
    campaign_settings, _ = _campaign_settings(campaign)
    constraints = campaign_settings.constraints
    domain = domain_of(recipient)
    risk_settings = RiskSettings.from_tenant_settings(
        tenant_settings,
        unsubscribe_markers=(get_settings().public_base_url.rstrip("/") + "/u/",),
        allowed=(mailbox.address,),
    )
    return PolicyInput(
        actor=ActorInput(type=actor.type.value, id=actor.id),
        action=ActionInput(
            type=ActionType.SEND,
            stage=Stage.SEND,
            campaign_id=str(request.campaign_id or ""),
            sequence_step=request.sequence_step,
            touch_number=request.touch_number,
            is_first_touch=request.touch_number == 1,
            approval_mode=request.approval_mode,
            step_template_approved=template_approved,
        ),
        tenant=TenantInput(
            id=str(uow.tenant_id),
            plan=context.tenant_plan,
            draft_only=bool(tenant_settings.get("draft_only", False)),
            kill_switch_active=tenant_active,
            dedupe_window_days=int(tenant_settings.get("dedupe_window_days", 30)),
        ),
        campaign=CampaignInput(
            id=str(campaign.id) if campaign else "",
            status=campaign.status if campaign else "active",
            mode=campaign_settings.mode.value,
            allowed_domains=list(constraints.allowed_domains),
            excluded_domains=list(constraints.excluded_domains),
            regions=list(constraints.regions),
            kill_switch_active=campaign_active,
            canary_enabled=campaign is not None and campaign_settings.canary.enabled,
            canary_passed=request.canary_passed,
            draft_only=campaign_settings.draft_only,
        ),
        mailbox=MailboxInput(
            id=str(mailbox.id),
            provider=mailbox.provider,
            time_zone=mailbox.time_zone,
            health_score=mailbox.health_score,
            bounce_rate=mailbox.bounce_rate,
            complaint_rate=mailbox.complaint_rate,
            sent_today=usage.sent_today,
            sent_this_hour=usage.sent_this_hour,
            new_recipients_today=usage.new_recipients_today,
            daily_cap=mailbox.daily_cap,
            hourly_cap=mailbox.hourly_cap,
            new_recipients_cap=mailbox.new_recipients_cap,
        ),
        recipient=RecipientInput(
            email=recipient,
            domain=domain,
            tld=domain.rsplit(".", 1)[-1],
            region=request.recipient_region,
            suppressed=status.suppressed,
            suppression_scope=status.scope,
            suppression_reason=status.reason,
            previously_contacted=context.previously_contacted,
            replied_before=request.replied_before,
            bounced_before=request.bounced_before or status.reason == "bounce",
            unsubscribed=status.reason == "unsubscribe",
        ),
        content=assess_content(DraftText(request.subject, request.body), risk_settings),
        evidence=request.evidence,
    )


@dataclass(frozen=True)
class _Gathered:
    policy_input: PolicyInput
    guard: DecisionGuard
    recipient: str
    mailbox: MailboxSnapshot
    context: _SendContext
    campaign: _CampaignRow | None


def _gather(uow: TenantUnitOfWork, request: SendRequest, actor: Actor, clock: Clock) -> _Gathered:
    """Everything both policy runs read, in one pass: the policy input and what made it."""
    try:
        recipient = _normalized_address(request.recipient)
    except ValueError as exc:
        raise GateRequestInvalid(f"recipient: {exc}") from exc
    locked, mailbox, context = _send_context(
        uow, request.mailbox_id, recipient, request.campaign_id, clock()
    )
    guard, campaign, template_approved = _guard_and_campaign(uow, request, locked)
    policy_input = build_policy_input(
        uow,
        request,
        actor,
        mailbox=mailbox,
        recipient=recipient,
        kill_switches=guard.kill_switches,
        context=context,
        campaign=campaign,
        template_approved=template_approved,
    )
    return _Gathered(policy_input, guard, recipient, mailbox, context, campaign)


def check_send(
    uow: TenantUnitOfWork,
    request: SendRequest,
    actor: Actor,
    *,
    clock: Clock = caps.utc_now,
) -> GateResult:
    """Decide one send and, if it may go, hold its slot. Call inside the send's transaction."""
    gathered = _gather(uow, request, actor, clock)
    policy_input, guard, recipient = gathered.policy_input, gathered.guard, gathered.recipient
    mailbox, campaign = gathered.mailbox, gathered.campaign
    tenant_settings = gathered.context.tenant_settings
    prepared = prepare_decision(uow, policy_input, guard=guard)
    outcome = _outcome(uow, request, prepared.decision)
    if outcome is not GateOutcome.ALLOWED:
        decision, _ = record_decision(uow, prepared, actor, correlation_id=request.correlation_id)
        return GateResult(outcome=outcome, decision=decision, policy_input=policy_input)
    _, campaign_raw = _campaign_settings(campaign)
    reduced = prepared.decision.reduced_caps
    send_caps = caps.mailbox_caps(
        mailbox,
        campaign_daily=_optional_cap(campaign_raw, CAMPAIGN_DAILY_CAP_SETTING),
        tenant_daily=_optional_cap(tenant_settings, TENANT_DAILY_CAP_SETTING),
        reduced_daily=reduced.daily,
        reduced_hourly=reduced.hourly,
        reduced_new_recipients=reduced.new_recipients,
    )
    plan = caps.plan_reservation(
        uow,
        mailbox=mailbox,
        recipient=recipient,
        campaign_id=request.campaign_id,
        caps=send_caps,
        clock=clock,
        keys=gathered.context.counter_keys,
    )
    reserved: Reservation | CapRefusal
    if plan is None:
        decision, _ = record_decision(uow, prepared, actor, correlation_id=request.correlation_id)
        reserved = caps.reserve_send_slot(
            uow,
            mailbox=mailbox,
            recipient=recipient,
            campaign_id=request.campaign_id,
            caps=send_caps,
            clock=clock,
        )
    else:
        # The slot is taken by the decision's own audit statement, after the chain head is
        # locked: one round trip, and the tenant's head and counter rows are held from the
        # same moment to commit.
        decision, returned = record_decision(
            uow, prepared, actor, plan.companion, correlation_id=request.correlation_id
        )
        reserved = caps.complete_reservation(uow, plan, returned)
    if isinstance(reserved, CapRefusal):
        AuditChain.append(
            uow,
            AuditEventType.SEND_CAP_REFUSED,
            actor,
            {
                "action_id": request.action_id,
                "decision_id": decision.decision_id,
                "mailbox_id": str(mailbox.id),
                "campaign_id": str(request.campaign_id) if request.campaign_id else None,
                "scope": reserved.scope.value,
                "cap": reserved.cap,
                "window_start": reserved.window_start.isoformat(),
                "retry_at": reserved.retry_at.isoformat(),
            },
            correlation_id=request.correlation_id,
        )
        return GateResult(
            outcome=GateOutcome.CAP_REFUSED,
            decision=decision,
            cap_refusal=reserved,
            policy_input=policy_input,
        )
    return GateResult(
        outcome=GateOutcome.ALLOWED,
        decision=decision,
        reservation=reserved,
        policy_input=policy_input,
    )


def _outcome(uow: TenantUnitOfWork, request: SendRequest, decision: Decision) -> GateOutcome:
    if not decision.allowed:
        return GateOutcome.DENIED
    # A person may already have looked at this message (approve every time, manual review).
    needs_person = decision.approval_required or decision.require_manual_review
    if needs_person and not _approval_granted(uow, request):
        return GateOutcome.APPROVAL_REQUIRED
    if decision.require_canary and not request.canary_send:
        return GateOutcome.CANARY_REQUIRED
    return GateOutcome.ALLOWED


def decide_draft(
    uow: TenantUnitOfWork,
    request: SendRequest,
    actor: Actor,
    *,
    clock: Clock = caps.utc_now,
) -> Decision:
    """The first of the two policy runs (ARCHITECTURE.md §6): when the draft is made. Same
    input as at send time, at the draft stage, and nothing reserved; it decides whether a
    person must approve before the send-time check."""
    gathered = _gather(uow, request, actor, clock)
    action = gathered.policy_input.action.model_copy(update={"stage": Stage.DRAFT})
    drafted = gathered.policy_input.model_copy(update={"action": action})
    return decide(uow, drafted, actor, guard=gathered.guard, correlation_id=request.correlation_id)
