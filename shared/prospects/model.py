"""Prospect rules with no I/O: header mapping, address and domain normalization, row parsing."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

# Column names people actually export, mapped to ours (compared lowercased, separators removed).
HEADER_ALIASES: dict[str, str] = {
    "email": "email",
    "emailaddress": "email",
    "workemail": "email",
    "firstname": "first_name",
    "givenname": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
    "title": "title",
    "jobtitle": "title",
    "company": "company_name",
    "companyname": "company_name",
    "organization": "company_name",
    "account": "company_name",
    "domain": "company_domain",
    "companydomain": "company_domain",
    "website": "company_domain",
    "industry": "industry",
    "region": "region",
    "country": "region",
    "timezone": "time_zone",
    "tz": "time_zone",
    "linkedin": "linkedin_url",
    "linkedinurl": "linkedin_url",
}
REQUIRED_COLUMNS = frozenset({"email"})
MAX_FIELD_LENGTHS = {
    "first_name": 100,
    "last_name": 100,
    "title": 200,
    "company_name": 200,
    "industry": 120,
    "region": 64,
    "time_zone": 64,
}
_SHORTEST_LIMIT = min(MAX_FIELD_LENGTHS.values())
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SEPARATORS = re.compile(r"[\s_\-.]+")
_SCHEME = re.compile(r"^[a-z]+://")


def canonical_header(raw: str) -> str | None:
    return HEADER_ALIASES.get(_SEPARATORS.sub("", raw.strip().lower()))


# RFC 5322 dot-atom: the everyday local part, valid without further checks.
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


@functools.lru_cache(maxsize=65_536)
def _validated_domain(domain: str) -> str:
    """email-validator's verdict on a domain, once per domain: an import of 100k rows has a
    few thousand companies, and domain checks (IDNA) are most of the validation cost."""
    try:
        return validate_email(f"postmaster@{domain}", check_deliverability=False).domain
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email: {exc}") from exc


def normalize_email(raw: str) -> str:
    """The address as we store it (lowercased); raises ValueError with a readable reason."""
    candidate = raw.strip()
    if not candidate:
        raise ValueError("email is empty")
    local, at, domain = candidate.rpartition("@")
    if at and len(local) <= 64 and len(candidate) <= 254 and _DOT_ATOM.fullmatch(local):
        return f"{local}@{_validated_domain(domain)}".lower()
    try:
        validated = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email: {exc}") from exc
    return validated.normalized.lower()


@functools.lru_cache(maxsize=1024)
def known_time_zone(name: str) -> bool:
    """An IANA zone name ZoneInfo can load: meeting times are written in the prospect's zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=65_536)
def normalize_domain(raw: str) -> str | None:
    """`https://www.Acme.com/about` → `acme.com`; None when it is not a domain.

    Cached: a file repeats each company's website on every one of its prospects' rows."""
    value = raw.strip().lower()
    if not value:
        return None
    value = _SCHEME.sub("", value).split("/", 1)[0].split(":", 1)[0]
    value = value.removeprefix("www.").rstrip(".")
    return value if _DOMAIN.fullmatch(value) else None


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[1]


# Not frozen: a frozen dataclass's __init__ costs ~5x as much, once per imported row.
@dataclass(slots=True)
class ProspectRow:
    email: str
    company_domain: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    company_name: str | None = None
    industry: str | None = None
    region: str | None = None
    time_zone: str | None = None
    enrichment: dict[str, Any] = field(default_factory=dict)


def parse_row(values: dict[str, str]) -> ProspectRow:
    """One CSV row (canonical column → text) as a prospect; raises ValueError saying why not."""
    email = normalize_email(values.get("email", ""))
    texts = values.values()
    # Two C-level scans instead of a Python loop per row; the loop only runs to name the column.
    if max(map(len, texts)) > _SHORTEST_LIMIT or "\x00" in "".join(texts):
        for column, value in values.items():
            limit = MAX_FIELD_LENGTHS.get(column)
            if limit is not None and len(value) > limit:
                raise ValueError(f"{column} is longer than {limit} characters")
            if "\x00" in value:
                raise ValueError(f"{column} contains a NUL character")
    raw_domain = values.get("company_domain", "")
    company_domain = normalize_domain(raw_domain) if raw_domain else email_domain(email)
    if company_domain is None:
        raise ValueError(f"company domain {raw_domain!r} is not a domain")
    linkedin_url = values.get("linkedin_url")
    get = values.get
    time_zone = get("time_zone", "").strip() or None
    if time_zone is not None and not known_time_zone(time_zone):
        raise ValueError(f"time_zone {time_zone!r} is not an IANA time zone (e.g. Europe/Berlin)")
    return ProspectRow(
        email,
        company_domain,
        get("first_name", "").strip() or None,
        get("last_name", "").strip() or None,
        get("title", "").strip() or None,
        get("company_name", "").strip() or None,
        get("industry", "").strip() or None,
        get("region", "").strip() or None,
        time_zone,
        {"linkedin_url": linkedin_url} if linkedin_url else {},
    )
