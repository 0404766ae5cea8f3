"""The policy engine's contract: one typed input, one decision.

Every outbound action (a draft, a send, a deal) is described by a `PolicyInput`; CEL rules
read it as nested maps (`recipient.domain`, `mailbox.new_recipients_today`, ...). Every
field always has a value (lists empty, numbers zero, unknowns false), so a rule never fails
on a missing key and the field-path validator can evaluate each rule against a fully
populated sample.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ActionType(StrEnum):
    DRAFT = "draft"
    SEND = "send"
    DEAL_CREATE = "deal_create"
    MEETING_BOOK = "meeting_book"
    CRM_WRITE = "crm_write"


class Stage(StrEnum):
    """Policy runs twice for a send (ARCHITECTURE.md §6): when drafted and when sent."""

    DRAFT = "draft"
    SEND = "send"
    REPLY = "reply"


class Effect(StrEnum):
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"
    REQUIRE_CANARY = "require_canary"
    THROTTLE = "throttle"
    REQUIRE_MANUAL_REVIEW = "require_manual_review"
    ALLOW_DEAL = "allow_deal"
    DEAL_REQUIRES_APPROVAL = "deal_requires_approval"
    DENY_DEAL = "deny_deal"


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActorInput(_Input):
    type: str = "system"
    id: str = ""
    permissions: list[str] = Field(default_factory=list)


class ActionInput(_Input):
    type: ActionType = ActionType.SEND
    stage: Stage = Stage.DRAFT
    campaign_id: str = ""
    sequence_step: int = 0
    touch_number: int = 1
    is_first_touch: bool = True
    approval_mode: str = "every_time"  # "once" | "every_time" (ARCHITECTURE.md §6)
    step_template_approved: bool = False


class TenantInput(_Input):
    id: str = ""
    plan: str = "pilot"
    draft_only: bool = False
    kill_switch_active: bool = False
    dedupe_window_days: int = 30


class CampaignInput(_Input):
    id: str = ""
    status: str = "draft"
    mode: str = "active"  # "pilot" restricts recipients to allowed_domains
    allowed_domains: list[str] = Field(default_factory=list)
    excluded_domains: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    kill_switch_active: bool = False
    canary_enabled: bool = False
    canary_passed: bool = False
    draft_only: bool = False


class MailboxInput(_Input):
    id: str = ""
    provider: str = "sandbox"
    time_zone: str = "UTC"
    health_score: float = 1.0
    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    sent_today: int = 0
    sent_this_hour: int = 0
    new_recipients_today: int = 0
    daily_cap: int = 0
    hourly_cap: int = 0
    new_recipients_cap: int = 0


class RecipientInput(_Input):
    email: str = ""
    domain: str = ""
    tld: str = ""
    region: str = ""
    suppressed: bool = False
    suppression_scope: str = ""  # "address" | "domain" | ""
    suppression_reason: str = ""
    previously_contacted: bool = False
    replied_before: bool = False
    bounced_before: bool = False
    unsubscribed: bool = False


class ContentInput(_Input):
    pii_types: list[str] = Field(default_factory=list)  # "email", "phone", "card", "iban"
    prohibited_claims: list[str] = Field(default_factory=list)
    missing_unsubscribe: bool = False
    missing_postal_address: bool = False
    unresolved_variables: list[str] = Field(default_factory=list)
    risk_score: float = 0.0


class EvidenceInput(_Input):
    factual_claims: int = 0
    claims_without_evidence: int = 0
    evidence_count: int = 0
    min_source_age_days: int = 0


class ReplyInput(_Input):
    classification: str = ""  # positive|neutral|objection|unsubscribe|ooo|bounce|complaint
    sub_label: str = ""
    confidence: float = 0.0
    touch_number: int = 0


class DealInput(_Input):
    existing_deal_in_window: bool = False
    existing_deal_id: str = ""
    source: str = ""  # "reply" | "meeting" | "" (sending never creates a deal)


class PolicyInput(_Input):
    actor: ActorInput = Field(default_factory=ActorInput)
    action: ActionInput = Field(default_factory=ActionInput)
    tenant: TenantInput = Field(default_factory=TenantInput)
    campaign: CampaignInput = Field(default_factory=CampaignInput)
    mailbox: MailboxInput = Field(default_factory=MailboxInput)
    recipient: RecipientInput = Field(default_factory=RecipientInput)
    content: ContentInput = Field(default_factory=ContentInput)
    evidence: EvidenceInput = Field(default_factory=EvidenceInput)
    reply: ReplyInput = Field(default_factory=ReplyInput)
    deal: DealInput = Field(default_factory=DealInput)

    def activation(self) -> dict[str, Any]:
        """The CEL activation: top-level names mapped to plain JSON values."""
        return self.model_dump(mode="json")


class Reason(BaseModel):
    # Frozen: evaluations share one instance per rule (see model.CompiledRule).
    model_config = ConfigDict(frozen=True)

    rule_id: str
    effect: Effect
    text: str


class RuleTrace(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    matched: bool
    effect: Effect
    error: str | None = None


class ReducedCaps(BaseModel):
    daily: int | None = None
    hourly: int | None = None
    new_recipients: int | None = None


class Decision(BaseModel):
    """What the engine decided, why, and everything it looked at to decide it."""

    allowed: bool
    reasons: list[Reason] = Field(default_factory=list)
    approval_required: bool = False
    require_canary: bool = False
    require_manual_review: bool = False
    reduced_caps: ReducedCaps = Field(default_factory=ReducedCaps)
    deal_create_allowed: bool = False
    deal_create_requires_approval: bool = False
    trace: list[RuleTrace] = Field(default_factory=list)
    pack_id: str = ""
    pack_version: int = 0
    input_hash: str = ""
    # The policy_decisions row `decide` recorded ("" for dry runs), for approvals to cite.
    decision_id: str = ""


# Policy packs: what a tenant saves, and what the API answers with. (Additive to the
# contract above: the gate builds against PolicyInput/Decision and never sees these.)

RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
MAX_RULES_PER_PACK = 500
MAX_EXPRESSION_LENGTH = 4096


class ThrottleParams(BaseModel):
    """Reduced caps a `throttle` rule imposes; several matching rules combine by minimum."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily: int | None = Field(default=None, ge=0)
    hourly: int | None = Field(default=None, ge=0)
    new_recipients: int | None = Field(default=None, ge=0)


class PolicyRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=RULE_ID_PATTERN)
    description: str = Field(default="", max_length=2000)
    when: str = Field(min_length=1, max_length=MAX_EXPRESSION_LENGTH)
    effect: Effect
    reason: str = Field(min_length=1, max_length=1000)
    params: ThrottleParams | None = None


class PolicyPackDocument(BaseModel):
    """A pack as written (YAML or JSON): an id, a description and ordered rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=RULE_ID_PATTERN)
    description: str = Field(default="", max_length=2000)
    rules: list[PolicyRule] = Field(min_length=1, max_length=MAX_RULES_PER_PACK)


class PackIssue(BaseModel):
    """One reason a pack was refused: which rule, which field, and where in the expression."""

    rule_id: str | None = None
    field: str
    message: str
    line: int | None = None
    column: int | None = None


class PackSource(StrEnum):
    BUILTIN = "builtin"
    TENANT = "tenant"


class PolicyPackRead(BaseModel):
    id: uuid.UUID | None  # None for the shipped default, which no tenant row holds
    pack_id: str
    version: int
    source: PackSource
    description: str
    rule_count: int
    active: bool
    source_sha256: str
    created_at: datetime | None = None
    created_by: dict[str, Any] | None = None


class PolicyPackDetail(PolicyPackRead):
    rules: list[PolicyRule]
    text: str


class PolicyPackList(BaseModel):
    active: PolicyPackRead
    versions: list[PolicyPackRead]


class PackSelector(BaseModel):
    """Which pack a dry run or backtest uses: unsaved text, a saved version, or the active one."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=262_144)
    version_id: uuid.UUID | None = None


class PolicyTestRequest(PackSelector):
    input: PolicyInput = Field(default_factory=PolicyInput)


class PolicyTestResult(BaseModel):
    decision: Decision
    pack: PolicyPackRead | None  # None when the request tested unsaved text


class BacktestBaseline(StrEnum):
    RECORDED = "recorded"  # what was actually decided at the time
    ACTIVE = "active"  # what the active pack would decide on the same inputs today


class BacktestRequest(PackSelector):
    limit: int = Field(default=1000, ge=1, le=10_000)
    baseline: BacktestBaseline = BacktestBaseline.RECORDED
    max_diffs: int = Field(default=200, ge=0, le=10_000)


class FieldChange(BaseModel):
    before: Any
    after: Any


class BacktestDiff(BaseModel):
    decision_id: uuid.UUID
    decided_at: datetime
    action_type: str
    stage: str
    recipient_domain: str
    outcome_before: str
    outcome_after: str
    changes: dict[str, FieldChange]
    rules_added: list[str]
    rules_removed: list[str]
    errors_after: list[str]


class BacktestReport(BaseModel):
    pack_id: str
    replayed: int
    changed: int
    unchanged: int
    unreplayable: int  # recorded inputs the current input schema no longer accepts
    newly_denied: int
    newly_allowed: int
    evaluation_errors: int
    transitions: dict[str, int]  # "allow -> deny": count
    field_changes: dict[str, int]  # field name: decisions where it changed
    rule_hits: dict[str, int]  # rule id: decisions it matched under the proposed pack
    diffs: list[BacktestDiff]
    diffs_truncated: bool


class KillSwitchChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID | None = None
    reason: str = Field(default="", max_length=1000)


class KillSwitchScopeState(BaseModel):
    campaign_id: uuid.UUID | None
    active: bool
    reason: str | None
    changed_at: datetime | None
    changed_by: dict[str, Any] | None


class KillSwitchStatus(BaseModel):
    tenant: KillSwitchScopeState
    campaigns: list[KillSwitchScopeState]
