"""Pure policy rules: compiling a pack, evaluating it, and comparing decisions.

No I/O here: the service loads packs and records decisions; this module only turns a pack
and an input into a `Decision`. A pack is compiled once per (tenant, pack id, version) and
the compiled form is shared by every evaluation of that version.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import cel
from pydantic import ValidationError

from shared.audit.model import canonical_json
from shared.errors import ValidationFailed
from shared.policy.cel import (
    CelSyntaxError,
    compile_expression,
    describe_runtime_error,
    sample_activations,
    scan_paths,
    unknown_paths,
)
from shared.policy.schemas import (
    Decision,
    Effect,
    PackIssue,
    PolicyInput,
    PolicyPackDocument,
    PolicyRule,
    Reason,
    ReducedCaps,
    RuleTrace,
)

INPUT_SECTIONS = frozenset(PolicyInput.model_fields)
_CONTROL_FLOW = (KeyboardInterrupt, SystemExit, GeneratorExit)


class PackInvalid(ValidationFailed):
    code = "invalid_policy_pack"
    title = "Invalid policy pack"

    def __init__(self, issues: list[PackIssue]) -> None:
        first = issues[0]
        where = f"rule '{first.rule_id}'" if first.rule_id else "the pack"
        summary = f"{where}, {first.field}: {first.message}"
        if len(issues) > 1:
            summary += f" (and {len(issues) - 1} more)"
        super().__init__(summary, errors=[issue.model_dump() for issue in issues])
        self.issues = issues


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: PolicyRule
    program: cel.Program
    # The trace entries and reason every evaluation of this rule gives when it does not fail,
    # built once: they are immutable, and building ~30 per decision showed in profiles.
    hit: RuleTrace = dataclass_field(init=False)
    miss: RuleTrace = dataclass_field(init=False)
    reason: Reason = dataclass_field(init=False)

    def __post_init__(self) -> None:
        rule = self.rule
        for name, value in (
            ("hit", RuleTrace.model_construct(
                rule_id=rule.id, matched=True, effect=rule.effect, error=None)),
            ("miss", RuleTrace.model_construct(
                rule_id=rule.id, matched=False, effect=rule.effect, error=None)),
            ("reason", Reason.model_construct(
                rule_id=rule.id, effect=rule.effect, text=rule.reason)),
        ):  # fmt: skip
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class CompiledPack:
    pack_id: str
    version: int
    rules: tuple[CompiledRule, ...]
    # What the rules read, per input section: field names, or None for the whole section.
    # Only these are converted into the CEL activation, because the conversion costs ~1-4 µs
    # per value and dominates an evaluation. A read the scan missed fails closed (deny).
    reads: Mapping[str, frozenset[str] | None]
    document: PolicyPackDocument

    def activation(self, full: Mapping[str, Any]) -> dict[str, Any]:
        pruned: dict[str, Any] = {}
        for section, fields in self.reads.items():
            values = full[section]
            pruned[section] = values if fields is None else {name: values[name] for name in fields}
        return pruned


def issues_from_validation(error: ValidationError, raw: Any) -> list[PackIssue]:
    """Pydantic errors as pack issues, each naming its rule when it is inside one."""
    raw_rules = raw.get("rules") if isinstance(raw, Mapping) else None
    issues = []
    for item in error.errors():
        location = list(item["loc"])
        rule_id: str | None = None
        if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
            index = location[1]
            rule_id = f"#{index + 1}"
            if isinstance(raw_rules, list) and index < len(raw_rules):
                candidate = raw_rules[index]
                if isinstance(candidate, Mapping) and isinstance(candidate.get("id"), str):
                    rule_id = candidate["id"]
            location = location[2:]
        field = ".".join(str(part) for part in location) or "rule"
        issues.append(PackIssue(rule_id=rule_id, field=field, message=item["msg"]))
    return issues


def _rule_shape_issues(document: PolicyPackDocument) -> list[PackIssue]:
    issues = []
    seen: set[str] = set()
    for rule in document.rules:
        if rule.id in seen:
            issues.append(PackIssue(rule_id=rule.id, field="id", message="duplicate rule id"))
        seen.add(rule.id)
        if rule.effect is Effect.THROTTLE:
            params = rule.params
            if params is None or (
                params.daily is None and params.hourly is None and params.new_recipients is None
            ):
                issues.append(
                    PackIssue(
                        rule_id=rule.id,
                        field="params",
                        message="a throttle rule needs at least one of daily, hourly, "
                        "new_recipients",
                    )
                )
        elif rule.params is not None:
            issues.append(
                PackIssue(
                    rule_id=rule.id,
                    field="params",
                    message=f"params apply only to throttle rules, not {rule.effect.value}",
                )
            )
    return issues


def _sample_issues(rule: PolicyRule, program: cel.Program) -> list[PackIssue]:
    for activation in sample_activations():
        try:
            result = program.execute(cel.Context(activation))
        except Exception as exc:
            return [
                PackIssue(
                    rule_id=rule.id,
                    field="when",
                    message="fails on a fully populated sample input: "
                    + describe_runtime_error(exc),
                )
            ]
        if not isinstance(result, bool):
            return [
                PackIssue(
                    rule_id=rule.id,
                    field="when",
                    message=f"must evaluate to a bool, evaluates to {type(result).__name__}",
                )
            ]
    return []


def _record_reads(reads: dict[str, set[str] | None], source: str, program: cel.Program) -> None:
    sections = {name for name in program.variables() if name in INPUT_SECTIONS}
    paths, bound = scan_paths(source)
    fields: dict[str, set[str]] = {}
    whole: set[str] = set()
    for reference in paths:
        head = reference.path[0]
        if head in bound or head not in sections:
            continue
        if len(reference.path) == 1:
            whole.add(head)
        else:
            fields.setdefault(head, set()).add(reference.path[1])
    for section in sections:
        if section in whole or section not in fields:
            reads[section] = None
            continue
        current = reads.get(section, set())
        if current is not None:
            current.update(fields[section])
            reads[section] = current


def compile_pack(document: PolicyPackDocument, version: int) -> CompiledPack:
    """Compile and validate every rule; raise `PackInvalid` listing every problem found."""
    issues = _rule_shape_issues(document)
    compiled: list[CompiledRule] = []
    reads: dict[str, set[str] | None] = {}
    for rule in document.rules:
        try:
            program = compile_expression(rule.when)
        except CelSyntaxError as exc:
            issues.append(
                PackIssue(
                    rule_id=rule.id,
                    field="when",
                    message=exc.message,
                    line=exc.line,
                    column=exc.column,
                )
            )
            continue
        unknown = unknown_paths(rule.when)
        for problem in unknown:
            issues.append(
                PackIssue(
                    rule_id=rule.id,
                    field=problem.path,
                    message=problem.message,
                    line=problem.line,
                    column=problem.column,
                )
            )
        if not unknown:
            issues.extend(_sample_issues(rule, program))
        _record_reads(reads, rule.when, program)
        compiled.append(CompiledRule(rule, program))
    if issues:
        raise PackInvalid(issues)
    return CompiledPack(
        pack_id=document.id,
        version=version,
        rules=tuple(compiled),
        reads={
            section: None if fields is None else frozenset(fields)
            for section, fields in reads.items()
        },
        document=document,
    )


_MAX_SAFE_INT = 2**53 - 1


class _NeedsFullCanonicalizer(Exception):
    pass


def _json_number_ready(value: Any) -> Any:
    """`value` with every float made to print as RFC 8785 prints it under `json.dumps`.

    RFC 8785 prints numbers as ECMAScript does: an integral double without a fraction
    (1.0 -> "1"), others as the shortest round-trip digits, which is what `repr` prints for
    magnitudes in [1e-4, 1e16). Policy inputs hold only such floats (scores, rates,
    confidences), so hashing them needs no pure-Python canonicalizer (~0.1 ms per input);
    anything else takes the full one.

    Exact type checks, most frequent first: this walks every value of every decision's input.
    Subclasses (enums, bool) take `_number_ready_any`.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is dict:
        ready = {}
        for key, item in value.items():
            # Sorting non-ASCII keys differs (UTF-16 code units); input keys are field names.
            if type(key) is not str or not key.isascii():
                raise _NeedsFullCanonicalizer
            item_kind = type(item)
            if (
                item_kind is str
                or item_kind is bool
                or item is None
                or (item_kind is int and -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT)
            ):
                ready[key] = item
            elif item_kind is list and not item:
                ready[key] = []
            else:
                ready[key] = _json_number_ready(item)
        return ready
    if kind is int:
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise _NeedsFullCanonicalizer
    if kind is float:
        return _float_ready(value)
    if kind is list:
        return [_json_number_ready(item) for item in value]
    return _number_ready_any(value)


def _float_ready(value: float) -> Any:
    magnitude = abs(value)
    if value.is_integer():
        if magnitude <= _MAX_SAFE_INT:
            return int(value)
        raise _NeedsFullCanonicalizer
    if 1e-4 <= magnitude < 1e16:
        return value
    raise _NeedsFullCanonicalizer


def _number_ready_any(value: Any) -> Any:
    if isinstance(value, float):
        return _float_ready(float(value))
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return value
        raise _NeedsFullCanonicalizer
    if isinstance(value, dict):
        return _json_number_ready(dict(value))
    if isinstance(value, list):
        return _json_number_ready(list(value))
    raise _NeedsFullCanonicalizer


# One encoder: json.dumps with non-default options builds a new encoder on every call.
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical_input_json(activation: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of a policy input."""
    try:
        ready = _json_number_ready(dict(activation))
        # Same escaping and separators as RFC 8785 for everything `ready` can hold.
        return _encode(ready).encode("utf-8")
    except (_NeedsFullCanonicalizer, UnicodeEncodeError):
        return canonical_json(dict(activation))


def input_hash(activation: Mapping[str, Any]) -> str:
    """sha256 of the RFC 8785 canonical JSON of the input."""
    return hashlib.sha256(canonical_input_json(activation)).hexdigest()


def _min_cap(current: int | None, proposed: int | None) -> int | None:
    if proposed is None:
        return current
    return proposed if current is None else min(current, proposed)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A decision with its input's RFC 8785 JSON (the input hash's preimage), for callers
    that record the input too."""

    decision: Decision
    canonical_input: bytes


def evaluate(pack: CompiledPack, policy_input: PolicyInput) -> Decision:
    """Evaluate every rule of `pack` against `policy_input`; any rule that fails denies."""
    return evaluate_input(pack, policy_input).decision


class _ThreadContexts(threading.local):
    """Per thread (a `cel.Context` is not thread-safe) and per pack: the context of the last
    evaluation and the pruned sections it holds."""

    def __init__(self) -> None:
        self.by_pack: dict[int, tuple[CompiledPack, cel.Context, dict[str, Any]]] = {}


_CONTEXTS = _ThreadContexts()
_CONTEXTS_PER_THREAD = 32


def _same_section(new: Any, old: Any) -> bool:
    """Equal and of the same JSON types (1 == 1.0 == True in Python, not in CEL)."""
    if type(new) is not type(old) or new != old:
        return False
    if type(new) is dict:
        for key, value in new.items():
            previous = old[key]
            if type(value) is not type(previous):
                return False
            if type(value) is list and any(
                type(a) is not type(b) for a, b in zip(value, previous, strict=True)
            ):
                return False
    return True


def _context(pack: CompiledPack, pruned: dict[str, Any]) -> cel.Context:
    """A context holding `pruned`. Converting values into CEL values is most of a context's
    cost and consecutive decisions share most sections (tenant, campaign, action, content),
    so a thread's context for the pack is reused and only changed sections are set again."""
    contexts = _CONTEXTS.by_pack
    held = contexts.get(id(pack))
    if held is None or held[0] is not pack:
        if len(contexts) >= _CONTEXTS_PER_THREAD:
            contexts.clear()
        context = cel.Context(pruned)
    else:
        _, context, previous = held
        for section, values in pruned.items():
            if not _same_section(values, previous.get(section)):
                context.add_variable(section, values)
    contexts[id(pack)] = (pack, context, pruned)
    return context


def evaluate_input(pack: CompiledPack, policy_input: PolicyInput) -> Evaluation:
    """`evaluate`, keeping the activation and canonical input JSON it computed."""
    activation = policy_input.activation()
    context = _context(pack, pack.activation(activation))
    trace: list[RuleTrace] = []
    reasons: list[Reason] = []
    matched: set[Effect] = set()
    failed = False
    daily: int | None = None
    hourly: int | None = None
    new_recipients: int | None = None
    for compiled in pack.rules:
        rule = compiled.rule
        error: str | None = None
        try:
            result = compiled.program.execute(context)
        except BaseException as exc:
            # Fail closed on anything the CEL runtime raises, including a Rust panic, which
            # pyo3 surfaces as a BaseException subclass.
            if isinstance(exc, _CONTROL_FLOW):
                raise
            error = describe_runtime_error(exc)
        else:
            if not isinstance(result, bool):
                error = f"evaluated to {type(result).__name__}, not bool"
        if error is not None:
            failed = True
            trace.append(
                RuleTrace.model_construct(
                    rule_id=rule.id, matched=False, effect=rule.effect, error=error
                )
            )
            reasons.append(
                Reason.model_construct(
                    rule_id=rule.id,
                    effect=Effect.DENY,
                    text=f"Rule '{rule.id}' failed to evaluate ({error}); denied (fail closed).",
                )
            )
            continue
        if not result:
            trace.append(compiled.miss)
            continue
        trace.append(compiled.hit)
        matched.add(rule.effect)
        reasons.append(compiled.reason)
        if rule.effect is Effect.THROTTLE and rule.params is not None:
            daily = _min_cap(daily, rule.params.daily)
            hourly = _min_cap(hourly, rule.params.hourly)
            new_recipients = _min_cap(new_recipients, rule.params.new_recipients)
    allowed = not failed and Effect.DENY not in matched
    deal_possible = (
        allowed
        and Effect.DENY_DEAL not in matched
        and bool(matched & {Effect.ALLOW_DEAL, Effect.DEAL_REQUIRES_APPROVAL})
    )
    canonical = canonical_input_json(activation)
    # Built without validation: every value is a bool, an int, a str or a model built above.
    decision = Decision.model_construct(
        allowed=allowed,
        reasons=reasons,
        approval_required=Effect.REQUIRE_APPROVAL in matched,
        require_canary=Effect.REQUIRE_CANARY in matched,
        require_manual_review=Effect.REQUIRE_MANUAL_REVIEW in matched,
        reduced_caps=ReducedCaps.model_construct(
            daily=daily, hourly=hourly, new_recipients=new_recipients
        ),
        deal_create_allowed=deal_possible,
        deal_create_requires_approval=deal_possible and Effect.DEAL_REQUIRES_APPROVAL in matched,
        trace=trace,
        pack_id=pack.pack_id,
        pack_version=pack.version,
        input_hash=hashlib.sha256(canonical).hexdigest(),
    )
    return Evaluation(decision, canonical)


# What a decision amounts to, without its trace: recorded with each decision and compared
# field by field in backtests.
SUMMARY_FIELDS = (
    "allowed",
    "approval_required",
    "require_canary",
    "require_manual_review",
    "reduced_caps",
    "deal_create_allowed",
    "deal_create_requires_approval",
)


def summarize(decision: Decision) -> dict[str, Any]:
    caps = decision.reduced_caps
    # The same dict as model_dump(mode="json", include=SUMMARY_FIELDS), without the
    # serializer's setup (every decision is summarized when it is recorded).
    return {
        "allowed": decision.allowed,
        "approval_required": decision.approval_required,
        "require_canary": decision.require_canary,
        "require_manual_review": decision.require_manual_review,
        "reduced_caps": {
            "daily": caps.daily,
            "hourly": caps.hourly,
            "new_recipients": caps.new_recipients,
        },
        "deal_create_allowed": decision.deal_create_allowed,
        "deal_create_requires_approval": decision.deal_create_requires_approval,
        "errors": [entry.rule_id for entry in decision.trace if entry.error is not None],
    }


def matched_rules(decision: Decision) -> list[str]:
    return [entry.rule_id for entry in decision.trace if entry.matched]


def outcome_label(summary: Mapping[str, Any], action_type: str) -> str:
    """One word for what happened, for backtest transition counts."""
    if action_type == "deal_create":
        if not summary.get("deal_create_allowed"):
            return "no_deal"
        return "deal_approval" if summary.get("deal_create_requires_approval") else "deal_auto"
    if not summary.get("allowed"):
        return "deny"
    for field, label in (
        ("require_manual_review", "manual_review"),
        ("approval_required", "approval"),
        ("require_canary", "canary"),
    ):
        if summary.get(field):
            return label
    caps = summary.get("reduced_caps") or {}
    if any(value is not None for value in caps.values()):
        return "allow_throttled"
    return "allow"


def changed_fields(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str] = SUMMARY_FIELDS
) -> dict[str, tuple[Any, Any]]:
    return {
        field: (before.get(field), after.get(field))
        for field in fields
        if before.get(field) != after.get(field)
    }
