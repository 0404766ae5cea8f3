"""Pydantic I/O for identity."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.audit.schemas import Actor, ActorType
from shared.identity.model import Role
from shared.identity.tokens import Provider

SLUG_REGEX = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"


class TenantCreate(BaseModel):
    slug: str = Field(pattern=SLUG_REGEX)
    name: str = Field(min_length=1, max_length=200)
    plan: str = Field(default="pilot", max_length=32)


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    plan: str
    status: str


class SsoConnectionCreate(BaseModel):
    provider: Provider
    audiences: list[str] = Field(min_length=1, max_length=10)
    # Entra: the customer's directory (tenant) id; issuer and JWKS follow from it.
    entra_tenant_id: uuid.UUID | None = None
    # Okta / generic OIDC: the authorization server's issuer, and optionally its JWKS URI.
    issuer: str | None = Field(default=None, max_length=512)
    jwks_uri: str | None = Field(default=None, max_length=1024)
    jit_role: Role | None = None


class SsoConnectionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    issuer: str
    audiences: list[str]
    jwks_uri: str
    entra_tenant_id: str | None
    jit_role: str | None


class UserCreate(BaseModel):
    issuer: str = Field(min_length=1, max_length=512)
    subject: str = Field(min_length=1, max_length=256)
    role: Role
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    issuer: str
    subject: str
    role: Role
    email: str | None
    display_name: str | None
    auth_provider: str
    status: str
    created_at: datetime


class RoleChange(BaseModel):
    role: Role


class TenantProvision(BaseModel):
    """What the platform operator sends to onboard a customer."""

    tenant: TenantCreate
    sso: SsoConnectionCreate
    owner: UserCreate


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=64)
    expires_at: datetime | None = None


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_by: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    secret: str = Field(description="The whole key. Shown once; store it now.")


class PrincipalKind(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    PLATFORM = "platform"


class Principal(BaseModel):
    """Who is calling, resolved and authorized: what every audit event records as its actor."""

    model_config = ConfigDict(frozen=True)

    kind: PrincipalKind
    id: str
    tenant_id: uuid.UUID | None
    role: Role | None = None
    permissions: frozenset[str]
    display: str | None = None

    def audit_actor(self) -> Actor:
        return Actor(type=ActorType(self.kind.value), id=self.id, display=self.display)
