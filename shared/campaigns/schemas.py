"""Pydantic I/O for campaigns and their sequences."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

STEP_ID = r"^[a-z0-9][a-z0-9_-]{0,39}$"
VARIABLE_NAME = r"^[a-z][a-z0-9_]{0,39}$"
MAX_DELAY_SECONDS = 90 * 24 * 3600


class ApprovalMode(StrEnum):
    ONCE = "once"
    EVERY_TIME = "every_time"


class BranchCondition(StrEnum):
    REPLIED = "replied"
    NOT_REPLIED = "not_replied"
    BOUNCED = "bounced"


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID)


class EmailStep(_Step):
    type: Literal["email"] = "email"
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)
    approval: ApprovalMode = ApprovalMode.EVERY_TIME
    next: str | None = None


class DelayStep(_Step):
    type: Literal["delay"] = "delay"
    seconds: int = Field(ge=1, le=MAX_DELAY_SECONDS)
    next: str | None = None


class BranchStep(_Step):
    type: Literal["branch"] = "branch"
    condition: BranchCondition
    then: str | None = Field(default=None, description="Step when the condition holds; null ends")
    otherwise: str | None = Field(default=None, description="Step when it does not; null ends")


Step = Annotated[EmailStep | DelayStep | BranchStep, Field(discriminator="type")]


class SequenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    steps: list[Step] = Field(min_length=1, max_length=50)
    variables: list[str] = Field(
        default_factory=list,
        description="Custom personalization fields (from prospect enrichment) the templates use",
    )

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, names: list[str]) -> list[str]:
        bad = [name for name in names if not re.fullmatch(VARIABLE_NAME, name)]
        if bad:
            raise ValueError(f"invalid variable names: {', '.join(bad)}")
        return names


class SequenceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    campaign_id: uuid.UUID
    name: str
    version: int
    steps: list[Step]
    variables: list[str]
    created_at: datetime


class SendWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time = time(9, 0)
    end: time = time(17, 0)
    days: list[Weekday] = Field(
        default_factory=lambda: [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI],
        min_length=1,
    )
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_domains: list[str] = Field(default_factory=list, max_length=1000)
    excluded_domains: list[str] = Field(default_factory=list, max_length=1000)
    regions: list[str] = Field(default_factory=list, max_length=100)
    excluded_industries: list[str] = Field(default_factory=list, max_length=100)


class CanarySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    size: int = Field(default=10, ge=1, le=1000)
    observation_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    max_bounce_rate: float = Field(default=0.05, ge=0, le=1)
    max_complaint_rate: float = Field(default=0.003, ge=0, le=1)
    max_negative_replies: int = Field(default=2, ge=0)


class CampaignMode(StrEnum):
    PILOT = "pilot"  # only constraints.allowed_domains may be contacted
    FULL = "full"


class CampaignSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: CampaignMode = CampaignMode.PILOT
    constraints: Constraints = Field(default_factory=Constraints)
    mailbox_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    send_window: SendWindow = Field(default_factory=SendWindow)
    canary: CanarySettings = Field(default_factory=CanarySettings)
    draft_only: bool = False


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid")

    titles: list[str] = Field(default_factory=list, max_length=50)
    industries: list[str] = Field(default_factory=list, max_length=50)
    company_sizes: list[str] = Field(default_factory=list, max_length=10)
    description: str | None = Field(default=None, max_length=2000)


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    target_persona: Persona = Field(default_factory=Persona)
    offer: str | None = Field(default=None, max_length=5000)
    settings: CampaignSettings = Field(default_factory=CampaignSettings)


class CampaignRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    target_persona: Persona
    offer: str | None
    status: str
    settings: CampaignSettings
    created_at: datetime
    updated_at: datetime


class CampaignPage(BaseModel):
    items: list[CampaignRead]
    next_cursor: str | None
