"""Authentication and authorization at the edge: one dependency per route.

`require_permission(p)` authenticates the caller, opens the request's tenant unit of work
(the one transaction of this HTTP call), checks `p` and yields a `TenantContext`. Its
`scope="function"` makes the transaction commit when the endpoint returns, before the
response is sent, so a failed commit can still become an error response.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from shared.audit.schemas import Actor
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.errors import Forbidden
from shared.identity.authentication import Authenticator, VerifiedUser
from shared.identity.permissions import PLATFORM_OPERATOR, PUBLIC
from shared.identity.schemas import Principal, PrincipalKind

PERMISSION_ATTRIBUTE = "asep_permission"
OPENAPI_KEY = "x-asep-permission"


@dataclass(frozen=True)
class TenantContext:
    tenant_id: uuid.UUID
    principal: Principal
    uow: TenantUnitOfWork

    @property
    def actor(self) -> Actor:
        return self.principal.audit_actor()


def authenticator_of(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def _mark(dependency: Callable[..., Any], permission: str) -> Callable[..., Any]:
    setattr(dependency, PERMISSION_ATTRIBUTE, permission)
    return dependency


def _tenant_of(credential: Principal | VerifiedUser) -> uuid.UUID:
    if credential.tenant_id is None:
        raise Forbidden("This identity does not belong to a tenant.")
    return credential.tenant_id


def _permitted(principal: Principal, permission: str) -> Principal:
    if permission not in principal.permissions:
        raise Forbidden(f"This action needs the '{permission}' permission.")
    return principal


def require_permission(permission: str) -> Any:
    def tenant_context(request: Request) -> Iterator[TenantContext]:
        authenticator = authenticator_of(request)
        credential = authenticator.authenticate(request.headers.get("authorization"))
        tenant_id = _tenant_of(credential)
        with tenant_unit_of_work(tenant_id) as uow:
            principal = (
                authenticator.resolve_user(uow, credential)
                if isinstance(credential, VerifiedUser)
                else credential
            )
            yield TenantContext(
                tenant_id=tenant_id, principal=_permitted(principal, permission), uow=uow
            )

    return Depends(_mark(tenant_context, permission), scope="function")


def require_platform_operator() -> Any:
    def platform_principal(request: Request) -> Principal:
        credential = authenticator_of(request).authenticate(request.headers.get("authorization"))
        if not (
            isinstance(credential, Principal)
            and credential.kind is PrincipalKind.PLATFORM
            and PLATFORM_OPERATOR in credential.permissions
        ):
            raise Forbidden("Only the platform operator may do this.")
        return credential

    return Depends(_mark(platform_principal, PLATFORM_OPERATOR))


def public_endpoint() -> Any:
    """For routes that authenticate by their own signature or token check (or need none)."""

    def public() -> None:
        return None

    return Depends(_mark(public, PUBLIC))


@dataclass(frozen=True)
class ApiRoute:
    path: str
    methods: frozenset[str]
    route: APIRoute


def api_routes(app: FastAPI) -> list[ApiRoute]:
    """Every API route with its full path, through included routers at any depth."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazily included routers: app.routes is flat
        return [
            ApiRoute(route.path, frozenset(route.methods or ()), route)
            for route in app.routes
            if isinstance(route, APIRoute)
        ]
    found = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if isinstance(original, APIRoute) and context.path is not None:
            found.append(ApiRoute(context.path, frozenset(context.methods or ()), original))
    return found


def route_permissions(route: APIRoute) -> list[str]:
    """The permissions a route's dependencies declare (exactly one, for a well-formed route)."""
    found: list[str] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        declared = getattr(dependant.call, PERMISSION_ATTRIBUTE, None)
        if declared is not None:
            found.append(str(declared))
        pending.extend(dependant.dependencies)
    return found


def publish_permissions(app: FastAPI) -> None:
    """Record each operation's permission in the OpenAPI document (x-asep-permission), for APIM
    policies and for readers of the API reference."""
    generate = app.openapi

    def openapi_with_permissions() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for entry in api_routes(app):
            declared = route_permissions(entry.route)
            operations = document.get("paths", {}).get(entry.path, {})
            for method in entry.methods:
                operation = operations.get(method.lower())
                if operation is not None and len(declared) == 1:
                    operation[OPENAPI_KEY] = declared[0]
        return document

    app.openapi = openapi_with_permissions  # type: ignore[method-assign]


def authorize(
    authenticator: Authenticator, authorization: str | None, permission: str
) -> Principal:
    """For functions outside the FastAPI app (HTTP streams): the same checks as
    `require_permission`, with the user resolved in its own short unit of work."""
    credential = authenticator.authenticate(authorization)
    tenant_id = _tenant_of(credential)
    if isinstance(credential, Principal):
        return _permitted(credential, permission)
    with tenant_unit_of_work(tenant_id) as uow:
        return _permitted(authenticator.resolve_user(uow, credential), permission)
