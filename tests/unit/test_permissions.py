"""The permission matrix: its published form is current, and its shape holds."""

from __future__ import annotations

from pathlib import Path

from shared.identity.model import Role
from shared.identity.permissions import Permission, permissions_markdown, role_permissions

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def test_docs_permissions_md_is_generated_from_the_matrix() -> None:
    assert DOC.read_text() == permissions_markdown(), (
        "docs/permissions.md is stale: run `.venv/bin/asep permissions doc > docs/permissions.md`"
    )


def test_owner_holds_every_permission() -> None:
    assert role_permissions(Role.OWNER) == frozenset(Permission)


def test_auditor_reads_everything_and_writes_nothing_but_audit_exports() -> None:
    auditor = role_permissions(Role.AUDITOR)
    readable = {p for p in Permission if p.value.endswith(":read")}
    assert readable <= auditor
    assert auditor - readable == {Permission.AUDIT_EXPORT}


def test_only_owners_and_admins_manage_users_and_sso() -> None:
    for permission in (Permission.USERS_WRITE, Permission.USERS_ROLE, Permission.SSO_WRITE):
        holders = {role for role in Role if permission in role_permissions(role)}
        assert holders == {Role.OWNER, Role.ADMIN}


def test_managers_decide_approvals_and_operators_do_not() -> None:
    assert Permission.APPROVALS_DECIDE in role_permissions(Role.MANAGER)
    assert Permission.APPROVALS_DECIDE not in role_permissions(Role.OPERATOR)
    assert Permission.KILL_SWITCH in role_permissions(Role.MANAGER)
