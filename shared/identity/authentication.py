"""Who is calling: bearer JWTs (Entra, Okta, dev) and API keys, resolved to a Principal.

A token's unverified `iss` only selects which configured issuer (and so which tenant and
which JWKS) to verify it against; nothing else from an unverified token is used. Every
refusal raises `Unauthorized` with the same client-facing detail; the reason goes to the
refusal log (counted, audited) and never includes the credential.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.config import Environment, Settings, get_settings
from shared.db.directory import RouteKind, resolve_tenant
from shared.db.unit_of_work import TenantUnitOfWork, directory_unit_of_work, tenant_unit_of_work
from shared.errors import Unauthorized
from shared.identity import dev_issuer, repository
from shared.identity.api_keys import ApiKeyAuthenticator
from shared.identity.model import Role
from shared.identity.orm import User
from shared.identity.permissions import PLATFORM_OPERATOR, role_permissions
from shared.identity.refusals import RefusalLog, audit_refusal
from shared.identity.schemas import Principal, PrincipalKind
from shared.identity.tokens import (
    AccessTokenValidator,
    JwksCache,
    Provider,
    TokenRejected,
    TrustedIssuer,
    read_unverified,
)

ISSUER_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class VerifiedUser:
    """A valid token from a tenant's IdP; its user is looked up in the request's unit of work."""

    tenant_id: uuid.UUID
    issuer: str
    subject: str
    provider: Provider
    jit_role: Role | None
    email: str | None
    display: str | None


@dataclass(frozen=True)
class _TenantIssuer:
    tenant_id: uuid.UUID
    trusted: TrustedIssuer
    jit_role: Role | None
    cached_at: float


class Authenticator:
    def __init__(
        self,
        settings: Settings | None = None,
        validator: AccessTokenValidator | None = None,
        api_keys: ApiKeyAuthenticator | None = None,
        refusals: RefusalLog | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.validator = validator or AccessTokenValidator(
            jwks=JwksCache(), leeway_seconds=self.settings.jwt_leeway_seconds
        )
        self.api_keys = api_keys or ApiKeyAuthenticator()
        self.refusals = refusals or RefusalLog(audit_sink=audit_refusal)
        self._issuers: dict[str, _TenantIssuer] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal | VerifiedUser:
        """Raises Unauthorized (after recording why) unless the credential is good."""
        tenant_hint: uuid.UUID | None = None
        try:
            credential = _bearer_credential(authorization)
            if self.api_keys.looks_like_key(credential):
                return self.api_keys.authenticate(credential)
            _, claims = read_unverified(credential)
            issuer = claims.get("iss")
            if not isinstance(issuer, str):
                raise TokenRejected("no issuer")
            platform = self._platform_issuer()
            if platform is not None and issuer == platform.issuer:
                return self._platform_principal(credential, platform)
            tenant_issuer = self._tenant_issuer(issuer)
            tenant_hint = tenant_issuer.tenant_id
            verified = self.validator.validate(credential, tenant_issuer.trusted)
            email = verified.claims.get("email") or verified.claims.get("preferred_username")
            return VerifiedUser(
                tenant_id=tenant_issuer.tenant_id,
                issuer=verified.issuer,
                subject=verified.subject,
                provider=tenant_issuer.trusted.provider,
                jit_role=tenant_issuer.jit_role,
                email=str(email) if email else None,
                display=str(verified.claims.get("name") or email or verified.subject),
            )
        except TokenRejected as rejected:
            self.refusals.record(rejected.reason, tenant_hint)
            raise Unauthorized("Authentication failed.") from None

    def resolve_user(self, uow: TenantUnitOfWork, verified: VerifiedUser) -> Principal:
        """The tenant's user for a verified token; created on first sign-in when JIT is on."""
        user = repository.find_user_by_subject(uow, verified.issuer, verified.subject)
        if user is None and verified.jit_role is not None:
            user = User(
                issuer=verified.issuer,
                subject=verified.subject,
                role=verified.jit_role.value,
                email=verified.email,
                display_name=verified.display,
                auth_provider=verified.provider.value,
                status="active",
            )
            uow.add(user)
            uow.flush()
            AuditChain.append(
                uow,
                AuditEventType.USER_CREATED,
                Actor(type=ActorType.SYSTEM, id="jit-provisioning"),
                {
                    "user_id": str(user.id),
                    "issuer": user.issuer,
                    "subject": user.subject,
                    "role": user.role,
                    "via": "just-in-time",
                },
            )
        if user is None or user.status != "active":
            self.refusals.record("no active user for subject", verified.tenant_id)
            raise Unauthorized("Authentication failed.")
        role = Role(user.role)
        return Principal(
            kind=PrincipalKind.USER,
            id=str(user.id),
            tenant_id=verified.tenant_id,
            role=role,
            permissions=frozenset(p.value for p in role_permissions(role)),
            display=user.display_name or user.email or verified.subject,
        )

    def forget_caches(self) -> None:
        with self._lock:
            self._issuers.clear()
        self.api_keys.forget()

    def _tenant_issuer(self, issuer: str) -> _TenantIssuer:
        now = time.monotonic()
        with self._lock:
            cached = self._issuers.get(issuer)
        if cached is not None and now - cached.cached_at < ISSUER_CACHE_SECONDS:
            return cached
        with directory_unit_of_work() as duow:
            tenant_id = resolve_tenant(duow, RouteKind.SSO_ISSUER, issuer)
        if tenant_id is None:
            raise TokenRejected("issuer not onboarded")
        with tenant_unit_of_work(tenant_id) as uow:
            connection = repository.find_sso_connection(uow, issuer)
            if connection is None:
                raise TokenRejected("issuer not onboarded")
            resolved = _TenantIssuer(
                tenant_id=tenant_id,
                trusted=TrustedIssuer(
                    issuer=connection.issuer,
                    audiences=frozenset(connection.audiences),
                    jwks_uri=connection.jwks_uri,
                    provider=Provider(connection.provider),
                    entra_tenant_id=connection.entra_tenant_id,
                ),
                jit_role=Role(connection.jit_role) if connection.jit_role else None,
                cached_at=now,
            )
        with self._lock:
            self._issuers[issuer] = resolved
        return resolved

    def _platform_issuer(self) -> TrustedIssuer | None:
        settings = self.settings
        if settings.platform_issuer and settings.platform_jwks_uri:
            return TrustedIssuer(
                issuer=settings.platform_issuer,
                audiences=frozenset({settings.platform_audience}),
                jwks_uri=settings.platform_jwks_uri,
                provider=Provider(settings.platform_provider),
            )
        if settings.env is Environment.AZURE:
            return None
        return TrustedIssuer(
            issuer=dev_issuer.issuer_for(dev_issuer.PLATFORM_SLUG),
            audiences=frozenset({dev_issuer.DEV_AUDIENCE}),
            jwks_uri=dev_issuer.jwks_uri(settings),
            provider=Provider.DEV,
        )

    def _platform_principal(self, credential: str, platform: TrustedIssuer) -> Principal:
        verified = self.validator.validate(credential, platform)
        operators = set(self.settings.platform_operators)
        if self.settings.env is not Environment.AZURE and not self.settings.platform_issuer:
            operators.add(f"{platform.issuer}|{dev_issuer.PLATFORM_OPERATOR_SUBJECT}")
        if f"{verified.issuer}|{verified.subject}" not in operators:
            raise TokenRejected("not a platform operator")
        return Principal(
            kind=PrincipalKind.PLATFORM,
            id=f"{verified.issuer}|{verified.subject}",
            tenant_id=None,
            permissions=frozenset({PLATFORM_OPERATOR}),
            display="platform operator",
        )


def _bearer_credential(authorization: str | None) -> str:
    if not authorization:
        raise TokenRejected("missing credentials")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise TokenRejected("not a bearer credential")
    return credential.strip()
