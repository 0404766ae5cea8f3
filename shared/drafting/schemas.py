"""Drafts: what the model must return, and what the API shows an approver."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Bullet(BaseModel):
    text: str = Field(min_length=1, max_length=500)
    evidence_ids: list[str] = Field(default_factory=list, max_length=10)


class DraftOutput(BaseModel):
    """The model's answer for Task.DRAFT_EMAIL; anything else is refused by validation."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20_000)
    bullets: list[Bullet] = Field(default_factory=list, max_length=10)
    claims: list[Bullet] = Field(
        default_factory=list, description="Factual statements about the prospect, with evidence"
    )
    cta: str | None = Field(default=None, max_length=500)


class SenderProfile(BaseModel):
    name: str
    title: str | None = None
    company: str
    postal_address: str


class DraftRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    prospect_id: uuid.UUID
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    sequence_version: int
    step_id: str
    subject: str
    body: str
    cta: str | None
    bullets: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    evidence_ids: list[uuid.UUID]
    content_risk: dict[str, Any]
    evidence_summary: dict[str, Any]
    model_provider: str
    model_name: str
    status: str
    created_at: datetime
