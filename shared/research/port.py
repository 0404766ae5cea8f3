"""Where facts about a prospect come from. Implementations: enrichment data (now), the
Playwright research sandbox (its own issue)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.research.schemas import Fact


@dataclass(frozen=True)
class ResearchSubject:
    prospect_id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    title: str | None
    company_id: uuid.UUID | None
    company_name: str | None
    company_domain: str | None
    industry: str | None
    prospect_enrichment: dict[str, Any]
    company_enrichment: dict[str, Any]
    known_since: datetime


class ResearchSource(Protocol):
    name: str

    def gather(self, subject: ResearchSubject) -> list[Fact]:
        """Facts about the subject, each with its source; never invented."""
        ...
