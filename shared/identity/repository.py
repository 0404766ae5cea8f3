"""Queries over tenants, users, SSO connections and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from shared.db.unit_of_work import TenantUnitOfWork
from shared.identity.orm import ApiKey, SsoConnection, Tenant, User


def get_current_tenant(uow: TenantUnitOfWork) -> Tenant | None:
    # tenants is keyed on id (RLS too), so it is scoped by hand rather than through uow.scoped().
    return uow.session.scalars(select(Tenant).where(Tenant.id == uow.tenant_id)).one_or_none()


def find_user_by_subject(uow: TenantUnitOfWork, issuer: str, subject: str) -> User | None:
    return uow.session.scalars(
        uow.scoped(User).where(User.issuer == issuer, User.subject == subject)
    ).one_or_none()


def list_users(uow: TenantUnitOfWork) -> Sequence[User]:
    return uow.session.scalars(uow.scoped(User).order_by(User.created_at, User.id)).all()


def count_active_owners(uow: TenantUnitOfWork) -> int:
    statement = (
        select(func.count())
        .select_from(User)
        .where(User.tenant_id == uow.tenant_id, User.role == "owner", User.status == "active")
    )
    return int(uow.session.scalar(statement) or 0)


def find_sso_connection(uow: TenantUnitOfWork, issuer: str) -> SsoConnection | None:
    return uow.session.scalars(
        uow.scoped(SsoConnection).where(SsoConnection.issuer == issuer)
    ).one_or_none()


def list_sso_connections(uow: TenantUnitOfWork) -> Sequence[SsoConnection]:
    return uow.session.scalars(uow.scoped(SsoConnection).order_by(SsoConnection.created_at)).all()


def find_api_key_by_prefix(uow: TenantUnitOfWork, prefix: str) -> ApiKey | None:
    return uow.session.scalars(uow.scoped(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()


def list_api_keys(uow: TenantUnitOfWork) -> Sequence[ApiKey]:
    return uow.session.scalars(uow.scoped(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def get_api_key(uow: TenantUnitOfWork, key_id: uuid.UUID) -> ApiKey | None:
    return uow.get(ApiKey, key_id)
