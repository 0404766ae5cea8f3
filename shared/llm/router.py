"""Chooses the model for a tenant, enforces its tool allowlist and spend ceiling, falls back.

The choice is made here and nowhere else (per tenant, from its settings); services ask the
router for a task's answer and never name a provider.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

from shared.errors import ASEPError
from shared.llm.port import GenerationRequest, GenerationResult, ModelError, ModelProvider, OutputT

log = logging.getLogger(__name__)


class ModelBudgetExhausted(ASEPError):
    status = 429
    code = "model_budget_exhausted"
    title = "The tenant's model budget for this month is spent"


class NoModelAvailable(ASEPError):
    status = 503
    code = "model_unavailable"
    title = "No model could answer"
    retryable = True


@dataclass(frozen=True)
class TenantModelPolicy:
    providers: tuple[str, ...] = ("offline",)
    allowed_tools: frozenset[str] = frozenset()
    monthly_ceiling_usd: Decimal | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TenantModelPolicy:
        llm = settings.get("llm") or {}
        ceiling = llm.get("monthly_ceiling_usd")
        return cls(
            providers=tuple(llm.get("providers") or ("offline",)),
            allowed_tools=frozenset(llm.get("allowed_tools") or ()),
            monthly_ceiling_usd=Decimal(str(ceiling)) if ceiling is not None else None,
        )


class SpendLedger(Protocol):
    def month_to_date(self, tenant_id: uuid.UUID) -> Decimal: ...

    def record(self, tenant_id: uuid.UUID, result: GenerationResult[Any], task: str) -> None: ...


@dataclass
class InMemorySpendLedger:
    spent: dict[uuid.UUID, Decimal] = field(default_factory=dict)
    calls: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)

    def month_to_date(self, tenant_id: uuid.UUID) -> Decimal:
        return self.spent.get(tenant_id, Decimal("0"))

    def record(self, tenant_id: uuid.UUID, result: GenerationResult[Any], task: str) -> None:
        self.spent[tenant_id] = self.month_to_date(tenant_id) + result.usage.cost_usd
        self.calls.append((tenant_id, result.provider, task))


class ModelRouter:
    """Built once per process with the configured providers; the spend ledger is per call
    because it writes in the caller's unit of work."""

    def __init__(self, providers: Mapping[str, ModelProvider]) -> None:
        self._providers = dict(providers)

    def generate(
        self,
        tenant_id: uuid.UUID,
        policy: TenantModelPolicy,
        request: GenerationRequest[OutputT],
        ledger: SpendLedger,
    ) -> GenerationResult[OutputT]:
        spent = ledger.month_to_date(tenant_id)
        if policy.monthly_ceiling_usd is not None and spent >= policy.monthly_ceiling_usd:
            raise ModelBudgetExhausted(f"Spent {spent} of {policy.monthly_ceiling_usd} USD.")
        offered = tuple(tool for tool in request.tools if tool.name in policy.allowed_tools)
        request = replace(request, tools=offered)
        failures: list[str] = []
        for name in policy.providers:
            provider = self._providers.get(name)
            if provider is None:
                failures.append(f"{name}: not configured")
                continue
            try:
                result = provider.generate(request)
            except ModelError as exc:
                log.warning("model %s failed %s: %s", name, request.task, exc)
                failures.append(f"{name}: {exc}")
                continue
            ledger.record(tenant_id, result, request.task.value)
            return result
        raise NoModelAvailable("; ".join(failures) or "no provider configured")
