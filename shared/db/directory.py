"""Directory: routing key -> tenant id, for finding a tenant before one is set.

The directory holds no customer data: a kind, an opaque routing key (a tenant slug, an
issuer+subject pair, an API-key prefix, a webhook routing id) and the tenant it routes to.
Any transaction may read it; a tenant may only add or remove routes to itself (RLS WITH
CHECK), so no tenant can claim another's keys, and the primary key keeps a route unique.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, String, delete, func, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base
from shared.db.unit_of_work import DirectoryUnitOfWork, TenantUnitOfWork


class RouteKind(StrEnum):
    TENANT_SLUG = "tenant_slug"
    SSO_ISSUER = "sso_issuer"
    USER_SUBJECT = "user_subject"
    API_KEY_PREFIX = "api_key_prefix"
    HUBSPOT_PORTAL = "hubspot_portal"
    GRAPH_SUBSCRIPTION = "graph_subscription"
    GMAIL_ADDRESS = "gmail_address"
    TEAMS_TENANT = "teams_tenant"


class DirectoryRoute(Base):
    __tablename__ = "tenant_directory"
    __table_args__ = ({"comment": "asep:directory"},)

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    routing_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


def register_route(uow: TenantUnitOfWork, kind: RouteKind, routing_key: str) -> None:
    uow.session.add(
        DirectoryRoute(kind=kind.value, routing_key=routing_key, tenant_id=uow.tenant_id)
    )
    uow.flush()


def remove_route(uow: TenantUnitOfWork, kind: RouteKind, routing_key: str) -> None:
    uow.execute(
        delete(DirectoryRoute).where(
            DirectoryRoute.kind == kind.value,
            DirectoryRoute.routing_key == routing_key,
            DirectoryRoute.tenant_id == uow.tenant_id,
        )
    )


def resolve_tenant(
    uow: DirectoryUnitOfWork | TenantUnitOfWork, kind: RouteKind, routing_key: str
) -> uuid.UUID | None:
    """Directory routes are readable from any transaction, with or without a tenant."""
    tenant_id: uuid.UUID | None = uow.execute(
        select(DirectoryRoute.tenant_id).where(
            DirectoryRoute.kind == kind.value, DirectoryRoute.routing_key == routing_key
        )
    ).scalar_one_or_none()
    return tenant_id


def all_tenant_ids(duow: DirectoryUnitOfWork) -> Sequence[uuid.UUID]:
    """Every provisioned tenant, for work across tenants (one unit of work per tenant after)."""
    return list(
        duow.execute(
            select(DirectoryRoute.tenant_id)
            .where(DirectoryRoute.kind == RouteKind.TENANT_SLUG.value)
            .order_by(DirectoryRoute.tenant_id)
        ).scalars()
    )
