"""Pydantic I/O for CRM integrations: connection status, stage mapping, connect start."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.crm.port import DealStageIntent


class ConnectStarted(BaseModel):
    authorize_url: str
    state_expires_at: datetime


class ConnectResult(BaseModel):
    connected: bool
    portal_id: str | None = None
    error: str | None = None
    replayed_writes: int = 0


class HeldWrites(BaseModel):
    reason: str
    count: int


class IntegrationStatus(BaseModel):
    provider: str
    connected: bool
    status: str
    portal_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    last_error: str | None = None
    connected_at: datetime | None = None
    pending_writes: int = 0
    held_writes: list[HeldWrites] = Field(default_factory=list)
    rejected_writes: int = 0


class StageTarget(BaseModel):
    pipeline_id: str = Field(min_length=1, max_length=64)
    stage_id: str = Field(min_length=1, max_length=64)


class StageMapping(BaseModel):
    """Intent -> (pipeline, stage). Intents left out are unmapped: deals for them are held."""

    stages: dict[DealStageIntent, StageTarget] = Field(default_factory=dict)
