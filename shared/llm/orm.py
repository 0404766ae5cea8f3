"""Model usage: one row per call, the basis of cost ceilings and ROI reporting."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin


class ModelUsage(TimestampedMixin, TenantScoped):
    __tablename__ = "model_usage"
    __table_args__ = (Index("ix_model_usage_tenant_id_created_at", "tenant_id", "created_at"),)

    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    model: Mapped[str] = mapped_column(String(80), nullable=False)
    task: Mapped[str] = mapped_column(String(40), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), nullable=False)
