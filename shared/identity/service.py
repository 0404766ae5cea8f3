"""Use cases: provisioning tenants, SSO connections and users."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain, PlatformAuditChain
from shared.db.directory import RouteKind, register_route, resolve_tenant
from shared.db.unit_of_work import TenantUnitOfWork, directory_unit_of_work, tenant_unit_of_work
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.identity import repository
from shared.identity.model import Role
from shared.identity.orm import SsoConnection, Tenant, User
from shared.identity.schemas import (
    SsoConnectionCreate,
    SsoConnectionRead,
    TenantCreate,
    TenantProvision,
    TenantRead,
    UserCreate,
    UserRead,
)
from shared.identity.tokens import Provider, entra_issuer

SYSTEM_ACTOR = Actor(type=ActorType.SYSTEM, id="asep")


class TenantSlugTaken(Conflict):
    code = "tenant_slug_taken"
    title = "Tenant slug taken"


class IssuerTaken(Conflict):
    code = "sso_issuer_taken"
    title = "Identity provider already onboarded"


class UserExists(Conflict):
    code = "user_exists"
    title = "User exists"


class LastOwner(Conflict):
    code = "last_owner"
    title = "A tenant keeps at least one owner"


def find_tenant_id(slug: str) -> uuid.UUID | None:
    with directory_unit_of_work() as duow:
        return resolve_tenant(duow, RouteKind.TENANT_SLUG, slug)


def _create_tenant_rows(uow: TenantUnitOfWork, request: TenantCreate) -> Tenant:
    tenant = Tenant(id=uow.tenant_id, slug=request.slug, name=request.name, plan=request.plan)
    uow.session.add(tenant)
    uow.flush()
    register_route(uow, RouteKind.TENANT_SLUG, request.slug)
    return tenant


def provision_tenant(
    request: TenantCreate,
    sso: SsoConnectionCreate | None = None,
    owner: UserCreate | None = None,
    *,
    actor: Actor = SYSTEM_ACTOR,
) -> TenantRead:
    """Create a tenant (and optionally its IdP and first owner) in one transaction.

    The tenant's chain starts with TENANT_CREATED; the platform chain records the
    provisioning too, in its own transaction once the tenant exists.
    """
    if find_tenant_id(request.slug) is not None:
        raise TenantSlugTaken(f"A tenant with slug '{request.slug}' exists.")
    tenant_id = uuid.uuid4()
    try:
        with tenant_unit_of_work(tenant_id) as uow:
            tenant = _create_tenant_rows(uow, request)
            read = TenantRead.model_validate(tenant)
            AuditChain.append(
                uow, AuditEventType.TENANT_CREATED, actor, read.model_dump(mode="json")
            )
            if sso is not None:
                add_sso_connection(uow, sso, actor=actor)
            if owner is not None:
                first_owner = owner.model_copy(update={"role": Role.OWNER})
                add_user(uow, first_owner, actor_role=Role.OWNER, actor=actor)
    except IntegrityError as exc:  # lost a race with another provisioning of the same keys
        raise TenantSlugTaken(
            f"A tenant with slug '{request.slug}' or one of its routing keys exists."
        ) from exc
    with directory_unit_of_work() as duow:
        PlatformAuditChain.append(
            duow,
            AuditEventType.TENANT_CREATED,
            actor,
            {"tenant_id": str(read.id), "slug": read.slug},
        )
    return read


def provision_from_request(request: TenantProvision, actor: Actor) -> TenantRead:
    return provision_tenant(request.tenant, request.sso, request.owner, actor=actor)


def ensure_tenant(request: TenantCreate) -> TenantRead:
    """Provision the tenant unless its slug already routes to one; return it either way."""
    tenant_id = find_tenant_id(request.slug)
    if tenant_id is None:
        return provision_tenant(request)
    with tenant_unit_of_work(tenant_id) as uow:
        tenant = repository.get_current_tenant(uow)
        assert tenant is not None, "directory routes to a tenant that does not exist"
        return TenantRead.model_validate(tenant)


def current_tenant(uow: TenantUnitOfWork) -> TenantRead:
    tenant = repository.get_current_tenant(uow)
    if tenant is None:
        raise NotFound("Tenant not found.")
    return TenantRead.model_validate(tenant)


def _resolve_sso(request: SsoConnectionCreate) -> tuple[str, str, str | None]:
    """(issuer, jwks_uri, entra tenant id) from what the admin typed."""
    if request.provider is Provider.ENTRA:
        if request.entra_tenant_id is None:
            raise ValidationFailed("An Entra connection needs entra_tenant_id.")
        tid = str(request.entra_tenant_id)
        jwks = request.jwks_uri or f"https://login.microsoftonline.com/{tid}/discovery/v2.0/keys"
        return entra_issuer(tid), jwks, tid
    if not request.issuer:
        raise ValidationFailed(f"A {request.provider.value} connection needs issuer.")
    issuer = request.issuer.rstrip("/") if request.provider is Provider.OKTA else request.issuer
    if request.jwks_uri:
        return issuer, request.jwks_uri, None
    if request.provider is Provider.OKTA:
        return issuer, f"{issuer}/v1/keys", None
    raise ValidationFailed("A generic OIDC connection needs jwks_uri.")


def add_sso_connection(
    uow: TenantUnitOfWork, request: SsoConnectionCreate, *, actor: Actor
) -> SsoConnectionRead:
    issuer, jwks_uri, entra_tenant_id = _resolve_sso(request)
    if resolve_tenant(uow, RouteKind.SSO_ISSUER, issuer) is not None:
        raise IssuerTaken("This identity provider is onboarded to a tenant already.")
    connection = SsoConnection(
        provider=request.provider.value,
        issuer=issuer,
        audiences=list(request.audiences),
        jwks_uri=jwks_uri,
        entra_tenant_id=entra_tenant_id,
        jit_role=request.jit_role.value if request.jit_role else None,
    )
    uow.add(connection)
    uow.flush()
    register_route(uow, RouteKind.SSO_ISSUER, issuer)
    read = SsoConnectionRead.model_validate(connection)
    AuditChain.append(
        uow, AuditEventType.SSO_CONNECTION_CREATED, actor, read.model_dump(mode="json")
    )
    return read


def list_sso_connections(uow: TenantUnitOfWork) -> list[SsoConnectionRead]:
    return [SsoConnectionRead.model_validate(c) for c in repository.list_sso_connections(uow)]


def _provider_of(uow: TenantUnitOfWork, issuer: str) -> str:
    connection = repository.find_sso_connection(uow, issuer)
    if connection is None:
        raise ValidationFailed("The user's issuer is not one of this tenant's SSO connections.")
    return connection.provider


def add_user(
    uow: TenantUnitOfWork, request: UserCreate, *, actor_role: Role, actor: Actor
) -> UserRead:
    if request.role is Role.OWNER and actor_role is not Role.OWNER:
        raise Forbidden("Only an owner can create another owner.")
    if repository.find_user_by_subject(uow, request.issuer, request.subject) is not None:
        raise UserExists("A user with this issuer and subject exists.")
    user = User(
        issuer=request.issuer,
        subject=request.subject,
        role=request.role.value,
        email=request.email,
        display_name=request.display_name,
        auth_provider=_provider_of(uow, request.issuer),
        status="active",
    )
    uow.add(user)
    uow.flush()
    read = UserRead.model_validate(user)
    AuditChain.append(uow, AuditEventType.USER_CREATED, actor, _user_event(read))
    return read


def _user_event(user: UserRead) -> dict[str, str | None]:
    # Who, by stable identifiers; the email is contact data and stays out of the chain.
    return {
        "user_id": str(user.id),
        "issuer": user.issuer,
        "subject": user.subject,
        "role": user.role.value,
    }


def list_users(uow: TenantUnitOfWork) -> Sequence[UserRead]:
    return [UserRead.model_validate(user) for user in repository.list_users(uow)]


def change_role(
    uow: TenantUnitOfWork, user_id: uuid.UUID, role: Role, *, actor_role: Role, actor: Actor
) -> tuple[UserRead, Role]:
    """Set a user's role; returns the user and the role it had."""
    user = uow.get(User, user_id)
    if user is None:
        raise NotFound("User not found.")
    previous = Role(user.role)
    if Role.OWNER in (role, previous) and actor_role is not Role.OWNER:
        raise Forbidden("Only an owner can grant or remove the owner role.")
    if (
        previous is Role.OWNER
        and role is not Role.OWNER
        and repository.count_active_owners(uow) <= 1
    ):
        raise LastOwner("This is the tenant's last owner.")
    user.role = role.value
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.USER_ROLE_CHANGED,
        actor,
        {"user_id": str(user.id), "from": previous.value, "to": role.value},
    )
    return UserRead.model_validate(user), previous
