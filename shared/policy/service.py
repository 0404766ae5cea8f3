"""Policy use cases: saving and activating packs, deciding (audited), dry runs and backtests.

`decide` is what every outbound action calls (ARCHITECTURE.md §6: when a draft is made and
again at send time). It reads the kill switches under a share lock, evaluates the tenant's
active pack (the shipped default until the tenant activates one), records the full input
for backtests and appends POLICY_EVALUATED, all in the caller's unit of work.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.audit.repository import Companion
from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork
from shared.errors import NotFound, ValidationFailed
from shared.policy import repository
from shared.policy.kill_switch import DecisionGuard, take_decision_guard
from shared.policy.model import (
    CompiledPack,
    changed_fields,
    compile_pack,
    evaluate,
    evaluate_input,
    matched_rules,
    outcome_label,
    summarize,
)
from shared.policy.orm import PolicyDecisionRecord, PolicyPackVersion
from shared.policy.packs import (
    compiled_packs,
    default_pack,
    default_pack_text,
    parse_pack_object,
    parse_pack_text,
    source_sha256,
)
from shared.policy.schemas import (
    BacktestBaseline,
    BacktestDiff,
    BacktestReport,
    BacktestRequest,
    Decision,
    FieldChange,
    PackSelector,
    PackSource,
    PolicyInput,
    PolicyPackDetail,
    PolicyPackList,
    PolicyPackRead,
    PolicyTestRequest,
    PolicyTestResult,
)


class PolicyPackNotFound(NotFound):
    code = "policy_pack_not_found"
    title = "Policy pack version not found"


class PackSelectorInvalid(ValidationFailed):
    code = "policy_pack_selector_invalid"
    title = "Give either pack text or a version id"


# Packs: saving, reading, activating.


def _compiled_version(uow: TenantUnitOfWork, row: PolicyPackVersion) -> CompiledPack:
    return compiled_packs.get_or_compile(
        (uow.tenant_id, row.pack_id, row.version),
        lambda: compile_pack(parse_pack_object(row.document), row.version),
    )


def _builtin_read(active: bool) -> PolicyPackRead:
    pack = default_pack()
    return PolicyPackRead(
        id=None,
        pack_id=pack.pack_id,
        version=pack.version,
        source=PackSource.BUILTIN,
        description=pack.document.description,
        rule_count=len(pack.rules),
        active=active,
        source_sha256=source_sha256(default_pack_text()),
    )


def _version_read(row: PolicyPackVersion, active_id: uuid.UUID | None) -> PolicyPackRead:
    return PolicyPackRead(
        id=row.id,
        pack_id=row.pack_id,
        version=row.version,
        source=PackSource.TENANT,
        description=row.description,
        rule_count=row.rule_count,
        active=row.id == active_id,
        source_sha256=row.source_sha256,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def save_pack(uow: TenantUnitOfWork, text: str, actor: Actor) -> PolicyPackRead:
    """Validate and store a new immutable version; the active pack does not change."""
    document = parse_pack_text(text)
    # Compiling validates every rule; version 0 stands in until the number is assigned.
    compile_pack(document, 0)
    repository.lock_version_numbering(uow)
    version = repository.next_version(uow)
    row = repository.add_version(
        uow,
        PolicyPackVersion(
            pack_id=document.id,
            version=version,
            description=document.description,
            document=document.model_dump(mode="json", exclude_none=True),
            source_text=text,
            source_sha256=source_sha256(text),
            rule_count=len(document.rules),
            created_by=actor.to_json(),
        ),
    )
    AuditChain.append(
        uow,
        AuditEventType.POLICY_CREATED,
        actor,
        {
            "pack_version_id": str(row.id),
            "pack_id": row.pack_id,
            "version": row.version,
            "source_sha256": row.source_sha256,
            "rules": [rule.id for rule in document.rules],
        },
    )
    active = repository.active_ref(uow)
    return _version_read(row, active.version_id if active else None)


def activate_pack(uow: TenantUnitOfWork, version_id: uuid.UUID, actor: Actor) -> PolicyPackRead:
    row = repository.get_version(uow, version_id)
    if row is None:
        raise PolicyPackNotFound(f"No policy pack version {version_id}.")
    previous = repository.active_ref(uow)
    repository.set_active(uow, row.id, actor.to_json())
    AuditChain.append(
        uow,
        AuditEventType.POLICY_PUBLISHED,
        actor,
        {
            "pack_version_id": str(row.id),
            "pack_id": row.pack_id,
            "version": row.version,
            "source_sha256": row.source_sha256,
            "previous": (
                {"pack_id": previous.pack_id, "version": previous.version}
                if previous
                else {"pack_id": default_pack().pack_id, "builtin": True}
            ),
        },
    )
    return _version_read(row, row.id)


def list_packs(uow: TenantUnitOfWork) -> PolicyPackList:
    active = repository.active_ref(uow)
    active_id = active.version_id if active else None
    versions = [_version_read(row, active_id) for row in repository.list_versions(uow)]
    active_read = next((v for v in versions if v.active), None) or _builtin_read(active=True)
    return PolicyPackList(active=active_read, versions=versions)


def get_pack(uow: TenantUnitOfWork, version_id: uuid.UUID) -> PolicyPackDetail:
    row = repository.get_version(uow, version_id)
    if row is None:
        raise PolicyPackNotFound(f"No policy pack version {version_id}.")
    active = repository.active_ref(uow)
    read = _version_read(row, active.version_id if active else None)
    document = parse_pack_object(row.document)
    return PolicyPackDetail(**read.model_dump(), rules=document.rules, text=row.source_text)


def load_active_pack(uow: TenantUnitOfWork) -> tuple[CompiledPack, uuid.UUID | None]:
    """The tenant's active pack, compiled (cached per version), and its version row id
    (None for the shipped default)."""
    return _compiled_active(uow, repository.active_ref(uow))


def _compiled_active(
    uow: TenantUnitOfWork, active: repository.ActiveRef | None
) -> tuple[CompiledPack, uuid.UUID | None]:
    if active is None:
        return default_pack(), None

    def build() -> CompiledPack:
        row = repository.get_version(uow, active.version_id)
        assert row is not None  # the active pointer's foreign key guarantees it
        return compile_pack(parse_pack_object(row.document), row.version)

    compiled = compiled_packs.get_or_compile((uow.tenant_id, active.pack_id, active.version), build)
    return compiled, active.version_id


# Deciding.


def _with_kill_switches(
    uow: TenantUnitOfWork, policy_input: PolicyInput, guard: DecisionGuard | None
) -> tuple[PolicyInput, DecisionGuard]:
    campaign_id = policy_input.campaign.id or policy_input.action.campaign_id
    if guard is None or not guard.holds_for(uow, campaign_id):
        guard = take_decision_guard(uow, campaign_id)
    tenant_active, campaign_active = guard.kill_switches
    if tenant_active == policy_input.tenant.kill_switch_active and (
        campaign_active == policy_input.campaign.kill_switch_active
    ):
        return policy_input, guard
    # The database is the authority: a caller's stale "inactive" never wins, and its
    # "active" (e.g. from an orchestration signal) is kept.
    return policy_input.model_copy(
        update={
            "tenant": policy_input.tenant.model_copy(
                update={
                    "kill_switch_active": tenant_active or policy_input.tenant.kill_switch_active
                }
            ),
            "campaign": policy_input.campaign.model_copy(
                update={
                    "kill_switch_active": campaign_active
                    or policy_input.campaign.kill_switch_active
                }
            ),
        }
    ), guard


@dataclass(frozen=True)
class PreparedDecision:
    """An evaluated decision not yet recorded (`record_decision` audits and stores it)."""

    decision: Decision
    policy_input: PolicyInput
    pack: CompiledPack
    version_id: uuid.UUID | None
    # The input's RFC 8785 JSON, which the decision's input hash is the hash of.
    canonical_input: bytes


def prepare_decision(
    uow: TenantUnitOfWork, policy_input: PolicyInput, *, guard: DecisionGuard | None = None
) -> PreparedDecision:
    """Evaluate under the tenant's active pack, with the kill switch state read FOR SHARE
    (or taken from `guard`, see `decide`). Nothing is written: record it before acting."""
    effective, guard = _with_kill_switches(uow, policy_input, guard)
    pack, version_id = _compiled_active(uow, guard.active_pack)
    evaluation = evaluate_input(pack, effective)
    return PreparedDecision(
        evaluation.decision, effective, pack, version_id, evaluation.canonical_input
    )


def record_decision(
    uow: TenantUnitOfWork,
    prepared: PreparedDecision,
    actor: Actor,
    companion: Companion | None = None,
    correlation_id: str | None = None,
) -> tuple[Decision, tuple[Any, ...]]:
    """Audit the decision (POLICY_EVALUATED) and store its row, with `companion`'s writes,
    in one statement: the decision with its id, and the companion's returned values."""
    decision, effective, pack, version_id = (
        prepared.decision,
        prepared.policy_input,
        prepared.pack,
        prepared.version_id,
    )
    summary = summarize(decision)
    matched = matched_rules(decision)
    decision_id = uuid.uuid4()
    row = repository.decision_row(
        uow,
        decision_id=decision_id,
        pack_id=pack.pack_id,
        pack_version=pack.version,
        pack_version_id=version_id,
        action_type=effective.action.type.value,
        stage=effective.action.stage.value,
        policy_input_json=prepared.canonical_input.decode(),
        input_hash=decision.input_hash,
        outcome=summary,
        matched_rules=matched,
        allowed=decision.allowed,
    )
    # The decision row is insert-only and carries its event's seq, so the event's own
    # statement writes it (one round trip under the chain's head lock, not two).
    _, returned = AuditChain.append_with(
        uow,
        AuditEventType.POLICY_EVALUATED,
        actor,
        {
            "decision_id": str(decision_id),
            "pack": {
                "id": pack.pack_id,
                "version": pack.version,
                "version_id": str(version_id) if version_id else None,
                "source": (PackSource.BUILTIN if version_id is None else PackSource.TENANT).value,
            },
            "action": {"type": effective.action.type.value, "stage": effective.action.stage.value},
            "matched_rules": matched,
            "decision": summary,
            "reasons": [
                {"rule_id": reason.rule_id, "effect": str(reason.effect), "text": reason.text}
                for reason in decision.reasons
            ],
            # The input itself (recipient addresses, content) is personal data and the chain
            # is immutable, so it lives in policy_decisions, where erasure is possible; its
            # RFC 8785 hash here proves that record was not altered afterwards.
            "input_hash": decision.input_hash,
        },
        row if companion is None else row + companion,
        correlation_id,
    )
    return decision.model_copy(update={"decision_id": str(decision_id)}), returned


def decide(
    uow: TenantUnitOfWork,
    policy_input: PolicyInput,
    actor: Actor,
    *,
    guard: DecisionGuard | None = None,
    correlation_id: str | None = None,
) -> Decision:
    """Decide an action under the tenant's active pack, record it and audit it (same UoW),
    under the correlation id of the journey or reply it decides for.

    The kill switch state is read here, FOR SHARE, and overrides the input's flags, so the
    guarantee does not depend on how fresh the caller's input was. A `guard` the caller took
    in this same transaction (for the same campaign) is that read already made; any other
    is ignored and the switch is read again."""
    prepared = prepare_decision(uow, policy_input, guard=guard)
    return record_decision(uow, prepared, actor, correlation_id=correlation_id)[0]


# Dry runs and backtests.


def _selected_pack(
    uow: TenantUnitOfWork, selector: PackSelector
) -> tuple[CompiledPack, PolicyPackRead | None]:
    if selector.text is not None and selector.version_id is not None:
        raise PackSelectorInvalid("Give pack text or a version id, not both.")
    if selector.text is not None:
        return compile_pack(parse_pack_text(selector.text), 0), None
    active = repository.active_ref(uow)
    active_id = active.version_id if active else None
    if selector.version_id is not None:
        row = repository.get_version(uow, selector.version_id)
        if row is None:
            raise PolicyPackNotFound(f"No policy pack version {selector.version_id}.")
        return _compiled_version(uow, row), _version_read(row, active_id)
    pack, version_id = load_active_pack(uow)
    if version_id is None:
        return pack, _builtin_read(active=True)
    row = repository.get_version(uow, version_id)
    assert row is not None
    return pack, _version_read(row, active_id)


def dry_run(uow: TenantUnitOfWork, request: PolicyTestRequest) -> PolicyTestResult:
    """Input -> decision with its trace. Nothing is recorded or audited."""
    pack, read = _selected_pack(uow, request)
    return PolicyTestResult(decision=evaluate(pack, request.input), pack=read)


def _replay(
    records: Sequence[PolicyDecisionRecord],
    proposed: CompiledPack,
    baseline_pack: CompiledPack | None,
    max_diffs: int,
) -> BacktestReport:
    transitions: Counter[str] = Counter()
    field_changes: Counter[str] = Counter()
    rule_hits: Counter[str] = Counter()
    diffs: list[BacktestDiff] = []
    changed = unreplayable = newly_denied = newly_allowed = errors = 0
    for record in records:
        try:
            policy_input = PolicyInput.model_validate(record.input)
        except ValidationError:
            unreplayable += 1
            continue
        if baseline_pack is None:
            before, rules_before = record.outcome, list(record.matched_rules)
        else:
            baseline = evaluate(baseline_pack, policy_input)
            before, rules_before = summarize(baseline), matched_rules(baseline)
        decision = evaluate(proposed, policy_input)
        after, rules_after = summarize(decision), matched_rules(decision)
        rule_hits.update(rules_after)
        errors += bool(after["errors"])
        fields = changed_fields(before, after)
        if not fields:
            continue
        changed += 1
        label_before = outcome_label(before, record.action_type)
        label_after = outcome_label(after, record.action_type)
        transitions[f"{label_before} -> {label_after}"] += 1
        field_changes.update(fields.keys())
        newly_denied += bool(before.get("allowed")) and not after["allowed"]
        newly_allowed += not before.get("allowed") and bool(after["allowed"])
        if len(diffs) < max_diffs:
            diffs.append(
                BacktestDiff(
                    decision_id=record.id,
                    decided_at=record.decided_at,
                    action_type=record.action_type,
                    stage=record.stage,
                    recipient_domain=policy_input.recipient.domain,
                    outcome_before=label_before,
                    outcome_after=label_after,
                    changes={
                        name: FieldChange(before=old, after=new)
                        for name, (old, new) in fields.items()
                    },
                    rules_added=[rule for rule in rules_after if rule not in rules_before],
                    rules_removed=[rule for rule in rules_before if rule not in rules_after],
                    errors_after=list(after["errors"]),
                )
            )
    replayed = len(records) - unreplayable
    return BacktestReport(
        pack_id=proposed.pack_id,
        replayed=replayed,
        changed=changed,
        unchanged=replayed - changed,
        unreplayable=unreplayable,
        newly_denied=newly_denied,
        newly_allowed=newly_allowed,
        evaluation_errors=errors,
        transitions=dict(transitions.most_common()),
        field_changes=dict(field_changes.most_common()),
        rule_hits=dict(rule_hits.most_common()),
        diffs=diffs,
        diffs_truncated=changed > len(diffs),
    )


def backtest(uow: TenantUnitOfWork, request: BacktestRequest) -> BacktestReport:
    """Replay a proposed pack over the recorded inputs of the last `limit` decisions and
    report what would change, against what was decided then or what the active pack
    decides now."""
    if request.text is None and request.version_id is None:
        raise PackSelectorInvalid("A backtest needs the proposed pack: text or a version id.")
    proposed, _ = _selected_pack(uow, request)
    baseline = None
    if request.baseline is BacktestBaseline.ACTIVE:
        baseline, _ = load_active_pack(uow)
    records = repository.recent_decisions(uow, request.limit)
    return _replay(records, proposed, baseline, request.max_diffs)
