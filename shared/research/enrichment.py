"""Facts from the enrichment data that came with a prospect (CSV columns, CRM, vendors).

Each recognised enrichment item becomes a fact with its own source URL when the data names
one; otherwise its provenance is an `asep://` URL pointing at the record it came from, so an
approver can always see where a sentence's claim comes from.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from shared.research.port import ResearchSubject
from shared.research.schemas import Fact


def _when(value: Any, default: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return default
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=default.tzinfo)
    return default


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return " ".join(value.split())[:limit]


class EnrichmentResearchSource:
    name = "enrichment"

    def gather(self, subject: ResearchSubject) -> list[Fact]:
        return list(self._facts(subject))

    def _facts(self, subject: ResearchSubject) -> Iterator[Fact]:
        company = subject.company_name or subject.company_domain or "the company"
        company_ref = f"asep://companies/{subject.company_id}/enrichment"
        prospect_ref = f"asep://prospects/{subject.prospect_id}/enrichment"
        known = subject.known_since
        ce, pe = subject.company_enrichment, subject.prospect_enrichment

        if subject.title:
            yield Fact(
                statement=(
                    f"{subject.first_name} is {subject.title} at {company}"
                    if subject.first_name
                    else f"They are {subject.title} at {company}"
                ),
                source_url=f"asep://prospects/{subject.prospect_id}",
                excerpt=f"title: {subject.title}",
                fetched_at=known,
                kind="role",
                confidence=0.7,
            )
        funding = ce.get("funding")
        if isinstance(funding, dict) and _text(funding.get("round"), 60):
            amount = _text(funding.get("amount"), 40)
            round_name = _text(funding.get("round"), 60)
            statement = f"{company} raised {'a ' + amount + ' ' if amount else 'a '}{round_name}"
            yield Fact(
                statement=statement,
                source_url=_text(funding.get("source_url"), 2048) or f"{company_ref}#funding",
                excerpt=_text(funding.get("summary"), 2000) or statement,
                fetched_at=_when(funding.get("announced_at"), known),
                kind="funding",
                confidence=0.9 if funding.get("source_url") else 0.6,
            )
        for item in (ce.get("news") or [])[:3]:
            if not isinstance(item, dict) or not _text(item.get("title"), 300):
                continue
            title = _text(item.get("title"), 300)
            yield Fact(
                statement=f"{company} was in the news: {title}",
                source_url=_text(item.get("url"), 2048) or f"{company_ref}#news",
                excerpt=_text(item.get("summary"), 2000) or str(title),
                fetched_at=_when(item.get("published_at"), known),
                kind="news",
                confidence=0.85 if item.get("url") else 0.5,
            )
        for item in (ce.get("hiring") or [])[:2]:
            role = _text(item.get("role"), 120) if isinstance(item, dict) else _text(item, 120)
            if role is None:
                continue
            url = _text(item.get("url"), 2048) if isinstance(item, dict) else None
            yield Fact(
                statement=f"{company} is hiring a {role}",
                source_url=url or f"{company_ref}#hiring",
                excerpt=f"open role: {role}",
                fetched_at=_when(item.get("posted_at") if isinstance(item, dict) else None, known),
                kind="hiring",
                confidence=0.8 if url else 0.5,
            )
        stack = [s for s in (ce.get("tech_stack") or []) if isinstance(s, str) and s.strip()]
        if stack:
            listed = ", ".join(stack[:3])
            yield Fact(
                statement=f"{company} uses {listed}",
                source_url=f"{company_ref}#tech_stack",
                excerpt=f"tech stack: {', '.join(stack)}"[:2000],
                fetched_at=known,
                kind="technology",
                confidence=0.6,
            )
        post = pe.get("recent_post")
        if isinstance(post, dict) and _text(post.get("text"), 300):
            text = _text(post.get("text"), 300)
            yield Fact(
                statement=f"{subject.first_name or 'They'} recently wrote about {text}",
                source_url=_text(post.get("url"), 2048) or f"{prospect_ref}#recent_post",
                excerpt=_text(post.get("text"), 2000) or str(text),
                fetched_at=_when(post.get("posted_at"), known),
                kind="social",
                confidence=0.8 if post.get("url") else 0.5,
            )
