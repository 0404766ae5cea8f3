"""Content risk: what in a draft could hurt the recipient, the sender or the law.

Pure functions over the draft's text and the tenant's settings; the result fills the policy
input's `content` section, where rules decide what to do about it.

- PII: email addresses, phone numbers, payment card numbers (Luhn-valid) and IBANs
  (ISO 13616 mod-97-valid). Addresses and numbers the sender means to show (its own
  signature) are passed in as `allowed` and ignored.
- Prohibited claims: the tenant's own phrase list, matched case-insensitively on word
  boundaries and across whitespace and line breaks.
- CAN-SPAM: an opt-out mechanism and the sender's physical postal address must appear
  (FTC compliance guide: https://www.ftc.gov/business-guidance/resources/can-spam-act-compliance-guide-business).
- Template variables left unresolved: `{{ first_name }}`, `{company}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.policy.schemas import ContentInput

EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+"
)
# 13-19 digits in groups separated by single spaces or dashes (how cards are written).
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
# Country code, check digits, then the BBAN, optionally grouped by fours with spaces.
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# A leading + or a parenthesised area code, then digit groups with separators; 7-15 digits
# (ITU-T E.164 allows at most 15).
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w-])"
)
DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
DOUBLE_BRACES = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
SINGLE_BRACES = re.compile(r"(?<!\{)\{\s*([A-Za-z_][\w.\- ]{0,63}?)\s*\}(?!\})")
OPT_OUT_WORDS = re.compile(r"\b(?:unsubscribe|opt[ -]?out)\b", re.IGNORECASE)

# Weights for the single summary number rules may threshold on; each signal alone says more.
_WEIGHTS = {
    "card": 0.6,
    "iban": 0.5,
    "email": 0.15,
    "phone": 0.15,
    "prohibited_claim": 0.5,
    "missing_unsubscribe": 0.4,
    "missing_postal_address": 0.3,
    "unresolved_variable": 0.6,
}


@dataclass(frozen=True)
class DraftText:
    subject: str
    body: str


@dataclass(frozen=True)
class RiskSettings:
    """What the tenant configured: `prohibited_claims` and `postal_address` in its settings."""

    prohibited_claims: Sequence[str] = ()
    postal_address: str | None = None
    unsubscribe_markers: Sequence[str] = ()
    allowed: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def from_tenant_settings(
        cls,
        settings: Mapping[str, Any],
        *,
        unsubscribe_markers: Sequence[str] = (),
        allowed: Iterable[str] = (),
    ) -> RiskSettings:
        claims = settings.get("prohibited_claims") or []
        address = settings.get("postal_address")
        return cls(
            prohibited_claims=tuple(str(c) for c in claims if str(c).strip()),
            postal_address=str(address) if address else None,
            unsubscribe_markers=tuple(unsubscribe_markers),
            allowed=tuple(allowed),
        )


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _normalize_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def find_pii(text: str, allowed: Sequence[str] = ()) -> list[str]:
    """The kinds of PII in `text`, in a fixed order: card, iban, email, phone."""
    allowed_lower = {a.strip().lower() for a in allowed}
    allowed_digits = {_digits(a) for a in allowed if len(_digits(a)) >= 7}
    found: list[str] = []
    remaining = text
    cards = [m for m in CARD.finditer(remaining) if luhn_valid(_digits(m.group()))]
    if cards:
        found.append("card")
    for match in cards:
        remaining = remaining.replace(match.group(), " ")
    ibans = [m for m in IBAN.finditer(remaining) if iban_valid(m.group())]
    if ibans:
        found.append("iban")
    for match in ibans:
        remaining = remaining.replace(match.group(), " ")
    emails = [m.group() for m in EMAIL.finditer(remaining)]
    if any(e.lower() not in allowed_lower for e in emails):
        found.append("email")
    for email in emails:
        remaining = remaining.replace(email, " ")
    for match in PHONE.finditer(remaining):
        candidate = match.group().strip()
        digits = _digits(candidate)
        if not 7 <= len(digits) <= 15 or DATE_LIKE.match(candidate):
            continue
        if digits in allowed_digits:
            continue
        found.append("phone")
        break
    return found


def find_prohibited_claims(text: str, phrases: Sequence[str]) -> list[str]:
    """The tenant's phrases that occur in `text`, as the tenant wrote them."""
    normalized = _normalize_space(text)
    hits = []
    for phrase in phrases:
        wanted = _normalize_space(phrase)
        if not wanted:
            continue
        pattern = r"(?<!\w)" + re.escape(wanted).replace(r"\ ", r"\s+") + r"(?!\w)"
        if re.search(pattern, normalized):
            hits.append(phrase)
    return hits


def find_unresolved_variables(text: str) -> list[str]:
    names = [m.group(1).strip() or "{{}}" for m in DOUBLE_BRACES.finditer(text)]
    without_double = DOUBLE_BRACES.sub(" ", text)
    names += [m.group(1).strip() for m in SINGLE_BRACES.finditer(without_double)]
    return list(dict.fromkeys(names))


def has_unsubscribe(text: str, markers: Sequence[str]) -> bool:
    lowered = text.lower()
    if any(marker and marker.lower() in lowered for marker in markers):
        return True
    return bool(OPT_OUT_WORDS.search(text))


def has_postal_address(text: str, postal_address: str | None) -> bool:
    if not postal_address or not postal_address.strip():
        return False
    wanted = _normalize_space(postal_address.replace(",", " "))
    return wanted in _normalize_space(text.replace(",", " "))


def assess_content(draft: DraftText, settings: RiskSettings) -> ContentInput:
    """Every risk signal of one draft, as the policy input's `content` section."""
    full_text = f"{draft.subject}\n{draft.body}"
    pii = find_pii(full_text, settings.allowed)
    claims = find_prohibited_claims(full_text, settings.prohibited_claims)
    unresolved = find_unresolved_variables(full_text)
    missing_unsubscribe = not has_unsubscribe(draft.body, settings.unsubscribe_markers)
    missing_postal = not has_postal_address(draft.body, settings.postal_address)
    score = sum(_WEIGHTS[kind] for kind in pii)
    score += _WEIGHTS["prohibited_claim"] * len(claims)
    score += _WEIGHTS["unresolved_variable"] if unresolved else 0.0
    score += _WEIGHTS["missing_unsubscribe"] if missing_unsubscribe else 0.0
    score += _WEIGHTS["missing_postal_address"] if missing_postal else 0.0
    return ContentInput(
        pii_types=pii,
        prohibited_claims=claims,
        missing_unsubscribe=missing_unsubscribe,
        missing_postal_address=missing_postal,
        unresolved_variables=unresolved,
        risk_score=round(min(score, 1.0), 4),
    )
