"""The spend ledger in PostgreSQL: usage recorded in the caller's unit of work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from shared.db.unit_of_work import TenantUnitOfWork
from shared.llm.orm import ModelUsage
from shared.llm.port import GenerationResult


class DbSpendLedger:
    def __init__(self, uow: TenantUnitOfWork) -> None:
        self._uow = uow

    def month_to_date(self, tenant_id: uuid.UUID) -> Decimal:
        now = datetime.now(UTC)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        total = self._uow.session.scalar(
            select(func.coalesce(func.sum(ModelUsage.cost_usd), 0)).where(
                ModelUsage.tenant_id == tenant_id, ModelUsage.created_at >= month_start
            )
        )
        return Decimal(total or 0)

    def record(self, tenant_id: uuid.UUID, result: GenerationResult[Any], task: str) -> None:
        self._uow.add(
            ModelUsage(
                provider=result.provider,
                model=result.model,
                task=task,
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                cost_usd=result.usage.cost_usd,
            )
        )
        self._uow.flush()
