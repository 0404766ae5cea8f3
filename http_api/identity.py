"""Tenants, users, SSO connections and API keys (seed §10 "Tenants & users")."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, status

from http_api.auth import TenantContext, require_permission, require_platform_operator
from shared.identity import api_keys, service
from shared.identity.model import Role
from shared.identity.permissions import Permission
from shared.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    Principal,
    RoleChange,
    SsoConnectionCreate,
    SsoConnectionRead,
    TenantProvision,
    TenantRead,
    UserCreate,
    UserRead,
)

router = APIRouter(tags=["identity"])


def _role(ctx: TenantContext) -> Role:
    # API keys act with no role of their own; role-sensitive rules treat them as non-owners.
    return ctx.principal.role or Role.ADMIN


@router.get("/tenants/me")
def get_my_tenant(
    ctx: Annotated[TenantContext, require_permission(Permission.TENANT_READ)],
) -> TenantRead:
    return service.current_tenant(ctx.uow)


@router.post("/tenants", status_code=status.HTTP_201_CREATED)
def create_tenant(
    body: TenantProvision,
    operator: Annotated[Principal, require_platform_operator()],
) -> TenantRead:
    return service.provision_from_request(body, operator.audit_actor())


@router.get("/users")
def list_users(
    ctx: Annotated[TenantContext, require_permission(Permission.USERS_READ)],
) -> list[UserRead]:
    return list(service.list_users(ctx.uow))


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(
    body: UserCreate,
    ctx: Annotated[TenantContext, require_permission(Permission.USERS_WRITE)],
) -> UserRead:
    return service.add_user(ctx.uow, body, actor_role=_role(ctx), actor=ctx.actor)


@router.patch("/users/{user_id}/role")
def change_user_role(
    user_id: uuid.UUID,
    body: RoleChange,
    ctx: Annotated[TenantContext, require_permission(Permission.USERS_ROLE)],
) -> UserRead:
    user, _ = service.change_role(
        ctx.uow, user_id, body.role, actor_role=_role(ctx), actor=ctx.actor
    )
    return user


@router.get("/sso-connections")
def list_sso_connections(
    ctx: Annotated[TenantContext, require_permission(Permission.SSO_READ)],
) -> list[SsoConnectionRead]:
    return service.list_sso_connections(ctx.uow)


@router.post("/sso-connections", status_code=status.HTTP_201_CREATED)
def create_sso_connection(
    body: SsoConnectionCreate,
    ctx: Annotated[TenantContext, require_permission(Permission.SSO_WRITE)],
) -> SsoConnectionRead:
    return service.add_sso_connection(ctx.uow, body, actor=ctx.actor)


@router.get("/api-keys")
def list_api_keys(
    ctx: Annotated[TenantContext, require_permission(Permission.API_KEYS_READ)],
) -> list[ApiKeyRead]:
    return api_keys.list_api_keys(ctx.uow)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
def create_api_key(
    body: ApiKeyCreate,
    ctx: Annotated[TenantContext, require_permission(Permission.API_KEYS_WRITE)],
) -> ApiKeyCreated:
    return api_keys.create_api_key(ctx.uow, body, ctx.principal)


@router.delete("/api-keys/{key_id}")
def revoke_api_key(
    key_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.API_KEYS_WRITE)],
) -> ApiKeyRead:
    return api_keys.revoke_api_key(ctx.uow, key_id, ctx.actor)
