"""Evidence: what ASEP knows about a prospect, where it came from, and when."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Fact(BaseModel):
    """A statement worth using in an email, with its source. Produced by a ResearchSource."""

    model_config = ConfigDict(frozen=True)

    statement: str = Field(min_length=1, max_length=500)
    source_url: str = Field(min_length=1, max_length=2048)
    excerpt: str = Field(min_length=1, max_length=2000)
    fetched_at: datetime
    kind: str = Field(max_length=40)
    confidence: float = Field(ge=0, le=1)


class EvidenceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    prospect_id: uuid.UUID
    kind: str
    statement: str
    source_url: str
    excerpt: str
    fetched_at: datetime
    content_hash: str
    confidence: float
    source: str

    def for_model(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "statement": self.statement,
            "source_url": self.source_url,
            "confidence": self.confidence,
        }
