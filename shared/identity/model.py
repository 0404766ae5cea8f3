"""Identity rules with no I/O."""

from __future__ import annotations

import re
from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    REVOPS = "revops"
    MANAGER = "manager"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def is_valid_slug(slug: str) -> bool:
    return bool(SLUG_PATTERN.fullmatch(slug))
