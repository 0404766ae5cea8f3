"""The model router: schema-validated answers, fallback, tool allowlist, spend ceiling."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from pydantic import BaseModel

from shared.drafting.schemas import DraftOutput
from shared.llm.offline import OfflineModel
from shared.llm.port import (
    GenerationRequest,
    GenerationResult,
    ModelError,
    OutputT,
    Task,
    ToolSpec,
    Usage,
)
from shared.llm.router import (
    InMemorySpendLedger,
    ModelBudgetExhausted,
    ModelRouter,
    NoModelAvailable,
    TenantModelPolicy,
)

TENANT = uuid.uuid4()
CONTEXT = {
    "subject": "Idea for Acme",
    "body": "Hi Ana,\n\n{{personalization}}\n\nWe help teams like yours.",
    "evidence": [
        {"id": "e2", "statement": "Acme raised a $30M Series B", "confidence": 0.9},
        {"id": "e1", "statement": "Acme is hiring a VP Sales", "confidence": 0.8},
    ],
    "prospect": {"first_name": "Ana"},
}


def request(tools: tuple[ToolSpec, ...] = ()) -> GenerationRequest[DraftOutput]:
    return GenerationRequest(Task.DRAFT_EMAIL, DraftOutput, "write", CONTEXT, tools=tools)


@dataclass
class ScriptedModel:
    """A hosted model's behaviour without a network: fails, or answers a fixed payload."""

    name: str
    fail: ModelError | None = None
    cost: Decimal = Decimal("0.01")
    seen_tools: list[tuple[str, ...]] = field(default_factory=list)

    def generate(self, req: GenerationRequest[OutputT]) -> GenerationResult[OutputT]:
        self.seen_tools.append(tuple(tool.name for tool in req.tools))
        if self.fail is not None:
            raise self.fail
        output = req.output_schema.model_validate(
            {"subject": "s", "body": "b", "bullets": [], "claims": []}
        )
        return GenerationResult(output, self.name, "scripted", Usage(10, 10, self.cost))


def test_the_offline_model_is_deterministic_and_cites_its_evidence() -> None:
    first = OfflineModel().generate(request()).output
    again = OfflineModel().generate(request()).output
    assert first == again
    assert first.bullets[0].evidence_ids == ["e2"]  # the most confident fact leads
    assert "I noticed Acme raised a $30M Series B." in first.body
    assert all(claim.evidence_ids for claim in first.claims)


def test_output_that_breaks_the_schema_is_refused() -> None:
    class Strict(BaseModel):
        never_produced: int

    with pytest.raises(ModelError):
        OfflineModel().generate(GenerationRequest(Task.DRAFT_EMAIL, Strict, "x", CONTEXT))


def test_the_router_falls_back_and_records_spend() -> None:
    ledger = InMemorySpendLedger()
    router = ModelRouter(
        {
            "openai": ScriptedModel("openai", fail=ModelError("429")),
            "offline": OfflineModel(),
        }
    )
    policy = TenantModelPolicy(providers=("openai", "offline"))
    result = router.generate(TENANT, policy, request(), ledger)
    assert result.provider == "offline"
    assert ledger.calls == [(TENANT, "offline", "draft_email")]


def test_only_allowlisted_tools_reach_the_model() -> None:
    model = ScriptedModel("anthropic")
    router = ModelRouter({"anthropic": model})
    tools = (ToolSpec("web_search", "search", {}), ToolSpec("send_email", "send", {}))
    policy = TenantModelPolicy(providers=("anthropic",), allowed_tools=frozenset({"web_search"}))
    router.generate(TENANT, policy, request(tools), InMemorySpendLedger())
    assert model.seen_tools == [("web_search",)]


def test_the_monthly_ceiling_stops_calls_once_reached() -> None:
    ledger = InMemorySpendLedger()
    router = ModelRouter({"openai": ScriptedModel("openai", cost=Decimal("0.60"))})
    policy = TenantModelPolicy(providers=("openai",), monthly_ceiling_usd=Decimal("1.00"))
    router.generate(TENANT, policy, request(), ledger)
    router.generate(TENANT, policy, request(), ledger)
    with pytest.raises(ModelBudgetExhausted):
        router.generate(TENANT, policy, request(), ledger)


def test_no_provider_answering_is_a_clear_error() -> None:
    router = ModelRouter({"openai": ScriptedModel("openai", fail=ModelError("5xx"))})
    with pytest.raises(NoModelAvailable, match="openai: 5xx; azure: not configured"):
        router.generate(
            TENANT,
            TenantModelPolicy(providers=("openai", "azure")),
            request(),
            InMemorySpendLedger(),
        )


def test_the_offline_opener_keeps_names_capitalised_and_lowercases_only_a_pronoun() -> None:
    nameless = {
        **CONTEXT,
        "evidence": [{"id": "e3", "statement": "They are CTO at Acme", "confidence": 0.7}],
    }
    answer = OfflineModel().generate(
        GenerationRequest(Task.DRAFT_EMAIL, DraftOutput, "write", nameless)
    )
    assert "I noticed they are CTO at Acme." in answer.output.body


def test_the_offline_opener_follows_a_greeting_the_template_already_has() -> None:
    follow_up = {**CONTEXT, "body": "Hi Ana, bringing this back up in case it got buried."}
    answer = OfflineModel().generate(
        GenerationRequest(Task.DRAFT_EMAIL, DraftOutput, "write", follow_up)
    )
    assert answer.output.body == (
        "Hi Ana, bringing this back up in case it got buried.\n\n"
        "I noticed Acme raised a $30M Series B."
    )
    ungreeted = {**CONTEXT, "body": "Quick question about your pipeline."}
    answer = OfflineModel().generate(
        GenerationRequest(Task.DRAFT_EMAIL, DraftOutput, "write", ungreeted)
    )
    assert answer.output.body == (
        "Hi Ana,\n\nI noticed Acme raised a $30M Series B.\n\nQuick question about your pipeline."
    )
