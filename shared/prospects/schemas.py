"""Pydantic I/O for prospects and companies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.prospects.model import known_time_zone


class ProspectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    title: str | None
    company_id: uuid.UUID | None
    source: str
    time_zone: str | None
    status: str
    enrichment: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ProspectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    title: str | None = Field(default=None, max_length=200)
    time_zone: str | None = Field(default=None, max_length=64)
    status: str | None = Field(default=None, pattern="^(active|paused|do_not_contact)$")
    enrichment: dict[str, Any] | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None and not known_time_zone(zone):
            raise ValueError(f"{zone!r} is not an IANA time zone (e.g. Europe/Berlin)")
        return zone


class ProspectPage(BaseModel):
    items: list[ProspectRead]
    next_cursor: str | None


class ImportRowError(BaseModel):
    line: int = Field(description="Line number in the file (the header is line 1)")
    email: str | None
    reason: str


class ImportReport(BaseModel):
    rows: int = Field(description="Data rows read (blank lines skipped)")
    imported: int
    already_present: int = Field(description="Rows whose address this tenant already has")
    suppressed: int = Field(description="Imported, but on the suppression list: never contacted")
    rejected: int
    companies_created: int
    errors: list[ImportRowError]
    ignored_columns: list[str]
    sha256: str = Field(description="Digest of the uploaded bytes, as recorded in the audit log")
