"""Pack validation (syntax positions, unknown fields and effects), evaluation semantics
(fail closed, combination, throttle minimum) and the input hash."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import cel
import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.policy import model as policy_model
from shared.policy.model import (
    SUMMARY_FIELDS,
    CompiledPack,
    CompiledRule,
    PackInvalid,
    canonical_input_json,
    compile_pack,
    evaluate,
    input_hash,
    summarize,
)
from shared.policy.packs import default_pack, parse_pack_text
from shared.policy.schemas import Effect, PolicyInput, PolicyRule, ThrottleParams
from tests.unit.policy.inputs import CLEAN_SEND, policy_input


def pack_yaml(*rules: dict[str, Any]) -> str:
    lines = ["id: test-pack", "rules:"]
    for rule in rules:
        full = {"effect": "deny", "reason": "because", **rule}
        lines.append(f"  - id: {full.pop('id')}")
        for key, value in full.items():
            if isinstance(value, dict):
                lines.append(f"    {key}:")
                lines.extend(f"      {k}: {v}" for k, v in value.items())
            else:
                rendered = json.dumps(value) if key == "when" else value
                lines.append(f"    {key}: {rendered}")
    return "\n".join(lines) + "\n"


def issues_of(text: str) -> list[dict[str, Any]]:
    with pytest.raises(PackInvalid) as caught:
        compile_pack(parse_pack_text(text), 1)
    return [issue.model_dump() for issue in caught.value.issues]


def test_a_valid_pack_compiles() -> None:
    text = pack_yaml({"id": "gov", "when": "recipient.domain.endsWith('.gov')"})
    pack = compile_pack(parse_pack_text(text), 7)
    assert (pack.pack_id, pack.version, len(pack.rules)) == ("test-pack", 7, 1)


def test_syntax_error_names_the_rule_and_the_position() -> None:
    text = pack_yaml(
        {"id": "fine", "when": "tenant.draft_only"},
        {"id": "broken", "when": "mailbox.sent_today >"},
    )
    (issue,) = issues_of(text)
    assert issue["rule_id"] == "broken"
    assert issue["field"] == "when"
    assert (issue["line"], issue["column"]) == (1, 21)
    assert "Syntax error" in issue["message"]


def test_unknown_field_names_the_rule_and_the_field() -> None:
    (issue,) = issues_of(pack_yaml({"id": "typo", "when": "recipient.domian == 'x.com'"}))
    assert issue["rule_id"] == "typo"
    assert issue["field"] == "recipient.domian"
    assert (issue["line"], issue["column"]) == (1, 1)


def test_unknown_field_behind_a_short_circuit_is_still_found() -> None:
    # With the samples' booleans all false, `&&` never evaluates the right side.
    when = "tenant.draft_only && mailbox.sent_this_day > 3"
    (issue,) = issues_of(pack_yaml({"id": "guarded", "when": when}))
    assert issue["field"] == "mailbox.sent_this_day"
    assert issue["column"] == 22


def test_field_below_a_scalar_is_refused() -> None:
    (issue,) = issues_of(pack_yaml({"id": "deep", "when": "recipient.domain.tld == 'gov'"}))
    assert issue["field"] == "recipient.domain.tld"
    assert "is a string" in issue["message"]


def test_unknown_input_section_is_refused() -> None:
    (issue,) = issues_of(pack_yaml({"id": "who", "when": "prospect.vip"}))
    assert issue["field"] == "prospect"


def test_strings_methods_and_macro_variables_are_not_mistaken_for_fields() -> None:
    when = (
        "content.pii_types.exists(t, t == 'recipient.nope') "
        '&& recipient.email.endsWith("a.b") && size(campaign.regions) > 0 '
        "&& r'mailbox.nope'.size() > 0"
    )
    compile_pack(parse_pack_text(pack_yaml({"id": "ok", "when": when})), 1)


def test_type_errors_are_found_on_the_populated_sample() -> None:
    # Lists are non-empty in the sample, so the comprehension body runs and fails.
    (issue,) = issues_of(pack_yaml({"id": "types", "when": "content.pii_types.exists(t, t > 3)"}))
    assert issue["rule_id"] == "types"
    assert "sample" in issue["message"]


def test_a_rule_must_evaluate_to_a_bool() -> None:
    (issue,) = issues_of(pack_yaml({"id": "number", "when": "mailbox.sent_today + 1"}))
    assert issue["rule_id"] == "number"
    assert "bool" in issue["message"]


def test_unknown_effect_names_the_rule_and_the_field() -> None:
    (issue,) = issues_of(pack_yaml({"id": "odd", "when": "true", "effect": "explode"}))
    assert (issue["rule_id"], issue["field"]) == ("odd", "effect")


def test_throttle_needs_caps_and_other_effects_take_no_params() -> None:
    issues = issues_of(
        pack_yaml(
            {"id": "slow", "when": "true", "effect": "throttle"},
            {"id": "deny-p", "when": "true", "params": {"daily": 3}},
        )
    )
    assert {(i["rule_id"], i["field"]) for i in issues} == {
        ("slow", "params"),
        ("deny-p", "params"),
    }


def test_duplicate_rule_ids_are_refused() -> None:
    issues = issues_of(pack_yaml({"id": "a", "when": "true"}, {"id": "a", "when": "false"}))
    assert [(i["rule_id"], i["field"]) for i in issues] == [("a", "id")]


def test_yaml_syntax_errors_carry_a_position() -> None:
    (issue,) = issues_of("id: x\nrules:\n  - id: a\n    when: [unclosed\n")
    assert issue["field"] == "document"
    assert issue["line"] is not None


def test_deeply_nested_yaml_is_an_invalid_pack_not_a_crash() -> None:
    (issue,) = issues_of("id: x\nrules: []\ndescription: " + "[" * 5_000 + "]" * 5_000)
    assert issue["field"] == "document"
    assert "nested too deeply" in issue["message"]


def test_every_expression_issue_is_reported_at_once() -> None:
    issues = issues_of(
        pack_yaml(
            {"id": "one", "when": "tenant.nope"},
            {"id": "two", "when": "("},
            {"id": "three", "when": "true"},
            {"id": "four", "when": "deal.nope || reply.nope"},
        )
    )
    assert [(issue["rule_id"], issue["field"]) for issue in issues] == [
        ("one", "tenant.nope"),
        ("two", "when"),
        ("four", "deal.nope"),
        ("four", "reply.nope"),
    ]


def _pack(*rules: tuple[str, str, Effect, dict[str, int] | None]) -> CompiledPack:
    """A pack built without validation, to reach evaluation paths validation prevents."""
    compiled = tuple(
        CompiledRule(
            PolicyRule(
                id=rule_id,
                when=when,
                effect=effect,
                reason=f"{rule_id} matched",
                params=ThrottleParams(**p) if p else None,
            ),
            cel.compile(when),
        )
        for rule_id, when, effect, p in rules
    )
    return CompiledPack(
        pack_id="unit",
        version=1,
        rules=compiled,
        reads=dict.fromkeys(PolicyInput.model_fields),
        document=default_pack().document,
    )


def test_a_rule_that_fails_at_runtime_denies_and_is_named() -> None:
    pack = _pack(
        ("fine", "tenant.draft_only", Effect.DENY, None),
        ("divides", "100 / mailbox.sent_today > 1", Effect.REQUIRE_APPROVAL, None),
        ("deal", "true", Effect.ALLOW_DEAL, None),
    )
    decision = evaluate(pack, policy_input(mailbox={"sent_today": 0}))
    assert decision.allowed is False
    assert decision.deal_create_allowed is False
    failed = [entry for entry in decision.trace if entry.error]
    assert [entry.rule_id for entry in failed] == ["divides"]
    assert [reason.rule_id for reason in decision.reasons if reason.effect is Effect.DENY] == [
        "divides"
    ]
    assert "fail closed" in decision.reasons[0].text
    assert evaluate(pack, policy_input(mailbox={"sent_today": 4})).allowed is True


def test_a_non_bool_result_at_runtime_denies() -> None:
    pack = _pack(("odd", "mailbox.sent_today", Effect.DENY, None))
    decision = evaluate(pack, policy_input())
    assert decision.allowed is False
    assert decision.trace[0].error is not None


def test_throttles_combine_by_minimum_per_cap() -> None:
    pack = _pack(
        ("a", "true", Effect.THROTTLE, {"daily": 30, "hourly": 4}),
        ("b", "true", Effect.THROTTLE, {"daily": 10, "new_recipients": 7}),
        ("c", "false", Effect.THROTTLE, {"daily": 1, "hourly": 1, "new_recipients": 1}),
    )
    caps = evaluate(pack, policy_input()).reduced_caps
    assert (caps.daily, caps.hourly, caps.new_recipients) == (10, 4, 7)


@pytest.mark.parametrize(
    ("effects", "allowed", "deal", "deal_approval"),
    [
        ({Effect.ALLOW_DEAL}, True, True, False),
        ({Effect.DEAL_REQUIRES_APPROVAL}, True, True, True),
        ({Effect.ALLOW_DEAL, Effect.DEAL_REQUIRES_APPROVAL}, True, True, True),
        ({Effect.ALLOW_DEAL, Effect.DENY_DEAL}, True, False, False),
        ({Effect.ALLOW_DEAL, Effect.DENY}, False, False, False),
        (set(), True, False, False),
    ],
)
def test_deal_effects_combine_with_deny_deal_winning(
    effects: set[Effect], allowed: bool, deal: bool, deal_approval: bool
) -> None:
    pack = _pack(*((effect.value, "true", effect, None) for effect in effects))
    decision = evaluate(pack, policy_input())
    assert (
        decision.allowed,
        decision.deal_create_allowed,
        decision.deal_create_requires_approval,
    ) == (allowed, deal, deal_approval)


def test_every_rule_is_traced_and_matched_ones_give_reasons() -> None:
    pack = _pack(
        ("approve", "true", Effect.REQUIRE_APPROVAL, None),
        ("review", "true", Effect.REQUIRE_MANUAL_REVIEW, None),
        ("canary", "false", Effect.REQUIRE_CANARY, None),
    )
    decision = evaluate(pack, policy_input())
    assert [(t.rule_id, t.matched) for t in decision.trace] == [
        ("approve", True),
        ("review", True),
        ("canary", False),
    ]
    assert [r.text for r in decision.reasons] == ["approve matched", "review matched"]
    assert decision.approval_required
    assert decision.require_manual_review
    assert not decision.require_canary


def test_input_hash_is_sha256_of_rfc8785_json() -> None:
    policy = policy_input(reply={"confidence": 0.849}, mailbox={"health_score": 1.0})
    activation = policy.activation()
    assert canonical_input_json(activation) == rfc8785.dumps(activation)
    decision = evaluate(default_pack(), policy)
    assert decision.input_hash == input_hash(activation)
    assert decision.input_hash != evaluate(default_pack(), policy_input()).input_hash


floats = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    confidence=floats,
    health=floats,
    count=st.integers(min_value=-(2**60), max_value=2**60),
    domain=text,
    claims=st.lists(text, max_size=3),
)
@example(confidence=1e-5, health=2.0**53, count=2**53, domain="é", claims=["\u2028"])
def test_fast_canonical_json_matches_rfc8785(
    confidence: float, health: float, count: int, domain: str, claims: list[str]
) -> None:
    activation = policy_input(
        reply={"confidence": confidence},
        mailbox={"health_score": health, "sent_today": count},
        recipient={"domain": domain},
        content={"prohibited_claims": claims},
    ).activation()
    try:
        expected = rfc8785.dumps(activation)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_input_json(activation)
        return
    assert canonical_input_json(activation) == expected


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["draft", "send", "deal_create", "meeting_book"]),
    first=st.booleans(),
    confidence=st.floats(min_value=0, max_value=1),
    classification=st.sampled_from(["positive", "neutral", "ooo", "unsubscribe", ""]),
    domain=st.sampled_from(["acme.com", "x.gov", "Army.MIL", "eu.acme.com", ""]),
    flags=st.lists(st.booleans(), min_size=6, max_size=6),
    pii=st.lists(st.sampled_from(["card", "phone", "email", "iban"]), max_size=2),
    new_today=st.integers(min_value=0, max_value=80),
)
def test_pruned_activation_decides_exactly_as_the_full_input(
    kind: str,
    first: bool,
    confidence: float,
    classification: str,
    domain: str,
    flags: list[bool],
    pii: list[str],
    new_today: int,
) -> None:
    """The default pack converts only the fields its rules read; it must decide the same as
    with every field present."""
    policy = policy_input(
        CLEAN_SEND,
        action={"type": kind, "is_first_touch": first},
        reply={"confidence": confidence, "classification": classification},
        recipient={"domain": domain, "suppressed": flags[0], "previously_contacted": flags[1]},
        tenant={"kill_switch_active": flags[2], "draft_only": flags[3]},
        campaign={"mode": "pilot" if flags[4] else "active", "allowed_domains": ["acme.com"]},
        deal={"source": "reply" if flags[5] else "meeting"},
        content={"pii_types": pii},
        mailbox={"new_recipients_today": new_today},
    )
    pack = default_pack()
    full = CompiledPack(
        pack_id=pack.pack_id,
        version=pack.version,
        rules=pack.rules,
        reads=dict.fromkeys(PolicyInput.model_fields),
        document=pack.document,
    )
    assert evaluate(pack, policy) == evaluate(full, policy)


def test_the_shipped_pack_file_is_a_valid_pack() -> None:
    from shared.policy.packs import default_pack_text

    document = parse_pack_text(default_pack_text())
    assert document.id == "asep-default"
    assert len(document.rules) == len(default_pack().rules) >= 25
    assert textwrap.dedent(default_pack_text()) == default_pack_text()


def test_a_reused_cel_context_decides_as_a_fresh_one() -> None:
    pack = default_pack()
    inputs = [
        policy_input(),
        policy_input(recipient={"email": "a@agency.gov", "domain": "agency.gov", "tld": "gov"}),
        policy_input(mailbox={"health_score": 1.0, "new_recipients_today": 40}),
        policy_input(tenant={"kill_switch_active": True}),
        policy_input(action={"is_first_touch": True, "touch_number": 1}),
        policy_input(content={"pii_types": ["card"], "missing_unsubscribe": True}),
        policy_input(),
    ]
    reused = [evaluate(pack, each).model_dump() for each in inputs]
    fresh = []
    for each in inputs:
        policy_model._CONTEXTS.by_pack.clear()
        fresh.append(evaluate(pack, each).model_dump())
    assert reused == fresh
    assert len({json.dumps(decision, sort_keys=True) for decision in reused}) >= 5


@pytest.mark.parametrize(
    ("new", "old", "same"),
    [
        ({"a": 1, "b": ["x"]}, {"a": 1, "b": ["x"]}, True),
        ({"a": 1}, {"a": 1.0}, False),
        ({"a": True}, {"a": 1}, False),
        ({"a": [True]}, {"a": [1]}, False),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, None, False),
    ],
)
def test_a_section_is_reused_only_when_equal_with_the_same_types(
    new: dict[str, Any], old: dict[str, Any] | None, same: bool
) -> None:
    assert policy_model._same_section(new, old) is same


def test_the_summary_is_the_decision_dumped_without_its_trace() -> None:
    decision = evaluate(default_pack(), policy_input(action={"is_first_touch": True}))
    dumped = decision.model_dump(mode="json", include=set(SUMMARY_FIELDS))
    assert summarize(decision) == {**dumped, "errors": []}
