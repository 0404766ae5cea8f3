"""The permission matrix: defined once here, published as docs/permissions.md (generated).

Permissions are `resource:action`. Every HTTP route declares exactly one (or `public`);
API-key scopes are permissions too, so a key can never do what its scopes do not name.
"""

from __future__ import annotations

from enum import StrEnum

from shared.identity.model import Role


class Permission(StrEnum):
    TENANT_READ = "tenant:read"
    TENANT_WRITE = "tenant:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    USERS_ROLE = "users:role"
    API_KEYS_READ = "api_keys:read"
    API_KEYS_WRITE = "api_keys:write"
    SSO_READ = "sso:read"
    SSO_WRITE = "sso:write"
    PROSPECTS_READ = "prospects:read"
    PROSPECTS_WRITE = "prospects:write"
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    CAMPAIGNS_RUN = "campaigns:run"
    APPROVALS_READ = "approvals:read"
    APPROVALS_DECIDE = "approvals:decide"
    POLICIES_READ = "policies:read"
    POLICIES_WRITE = "policies:write"
    POLICIES_ACTIVATE = "policies:activate"
    DELIVERABILITY_READ = "deliverability:read"
    DELIVERABILITY_WRITE = "deliverability:write"
    KILL_SWITCH = "kill_switch:write"
    INTEGRATIONS_READ = "integrations:read"
    INTEGRATIONS_WRITE = "integrations:write"
    REPLIES_READ = "replies:read"
    REPLIES_LABEL = "replies:label"
    DEALS_READ = "deals:read"
    MEETINGS_READ = "meetings:read"
    REPORTS_READ = "reports:read"
    EVENTS_READ = "events:read"
    AUDIT_READ = "audit:read"
    AUDIT_EXPORT = "audit:export"


PUBLIC = "public"
# Outside the six tenant roles: the deployment's operator, who provisions tenants.
PLATFORM_OPERATOR = "platform:operate"

_READ = frozenset(p for p in Permission if p.value.endswith(":read"))
_ALL = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _ALL,
    # Admins run the tenant but cannot change who owns it (enforced in the users service).
    Role.ADMIN: _ALL,
    Role.REVOPS: _READ
    | {
        Permission.PROSPECTS_WRITE,
        Permission.CAMPAIGNS_WRITE,
        Permission.CAMPAIGNS_RUN,
        Permission.POLICIES_WRITE,
        Permission.DELIVERABILITY_WRITE,
        Permission.INTEGRATIONS_WRITE,
        Permission.REPLIES_LABEL,
        Permission.API_KEYS_WRITE,
    },
    Role.MANAGER: _READ
    | {
        Permission.APPROVALS_DECIDE,
        Permission.CAMPAIGNS_RUN,
        Permission.KILL_SWITCH,
        Permission.REPLIES_LABEL,
    },
    Role.OPERATOR: frozenset(
        {
            Permission.TENANT_READ,
            Permission.PROSPECTS_READ,
            Permission.PROSPECTS_WRITE,
            Permission.CAMPAIGNS_READ,
            Permission.CAMPAIGNS_RUN,
            Permission.APPROVALS_READ,
            Permission.DELIVERABILITY_READ,
            Permission.REPLIES_READ,
            Permission.REPLIES_LABEL,
            Permission.DEALS_READ,
            Permission.MEETINGS_READ,
            Permission.REPORTS_READ,
            Permission.EVENTS_READ,
        }
    ),
    # Read-only, everything, including the audit trail and its export.
    Role.AUDITOR: _READ | {Permission.AUDIT_EXPORT},
}


def role_permissions(role: Role) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]


def role_has(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def permissions_markdown() -> str:
    """docs/permissions.md, generated: `asep permissions doc > docs/permissions.md`."""
    roles = list(Role)
    lines = [
        "# Permissions",
        "",
        "Generated from `shared/identity/permissions.py` by `asep permissions doc`; "
        "a test fails when this file is stale.",
        "",
        "Every route declares one permission (or `public`: health, unsubscribe links, "
        "webhooks and Teams, which check their own signature). API-key scopes are "
        "permissions; a key gets at most its creator's permissions.",
        "",
        "| permission | " + " | ".join(role.value for role in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for permission in Permission:
        marks = ["✓" if role_has(role, permission) else "" for role in roles]
        lines.append(f"| `{permission.value}` | " + " | ".join(marks) + " |")
    lines += [
        "",
        f"`{PLATFORM_OPERATOR}` belongs to the deployment's platform operator (configured by "
        "`ASEP_PLATFORM_OPERATORS`), outside the six tenant roles: it provisions tenants.",
        "",
    ]
    return "\n".join(lines)
