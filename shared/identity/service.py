"""Tenant provisioning and lookup."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from shared.db.directory import RouteKind, register_route, resolve_tenant
from shared.db.unit_of_work import directory_unit_of_work, tenant_unit_of_work
from shared.errors import Conflict
from shared.identity.orm import Tenant
from shared.identity.repository import get_current_tenant
from shared.identity.schemas import TenantCreate, TenantRead


class TenantSlugTaken(Conflict):
    code = "tenant_slug_taken"
    title = "Tenant slug taken"


def find_tenant_id(slug: str) -> uuid.UUID | None:
    with directory_unit_of_work() as duow:
        return resolve_tenant(duow, RouteKind.TENANT_SLUG, slug)


def provision_tenant(request: TenantCreate) -> TenantRead:
    """Create a tenant and its directory route in one transaction (its own unit of work)."""
    if find_tenant_id(request.slug) is not None:
        raise TenantSlugTaken(f"A tenant with slug '{request.slug}' exists.")
    tenant_id = uuid.uuid4()
    try:
        with tenant_unit_of_work(tenant_id) as uow:
            tenant = Tenant(id=tenant_id, slug=request.slug, name=request.name, plan=request.plan)
            uow.session.add(tenant)
            uow.flush()
            register_route(uow, RouteKind.TENANT_SLUG, request.slug)
            return TenantRead.model_validate(tenant)
    except IntegrityError as exc:  # lost a race with another provisioning of the same slug
        raise TenantSlugTaken(f"A tenant with slug '{request.slug}' exists.") from exc


def ensure_tenant(request: TenantCreate) -> TenantRead:
    """Provision the tenant unless its slug already routes to one; return it either way."""
    tenant_id = find_tenant_id(request.slug)
    if tenant_id is None:
        return provision_tenant(request)
    with tenant_unit_of_work(tenant_id) as uow:
        tenant = get_current_tenant(uow)
        assert tenant is not None, "directory routes to a tenant that does not exist"
        return TenantRead.model_validate(tenant)
