"""Every route declares the permission it needs; a test fails when one does not.

`public` routes (health, unsubscribe links, webhooks, Teams) authenticate by their own
signature or token check (ARCHITECTURE.md §6). Role permissions arrive with identity.
"""

from __future__ import annotations

from typing import Any

PERMISSION_KEY = "x-asep-permission"
PUBLIC = "public"


def requires(permission: str) -> dict[str, Any]:
    """Route keyword arguments that record `permission` in the route and in the OpenAPI document."""
    return {"openapi_extra": {PERMISSION_KEY: permission}}
