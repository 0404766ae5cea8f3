"""Connecting a tenant's HubSpot account (seed §14.3) and keeping the connection usable.

OAuth: `start_connect` stores a single-use state (only its SHA-256) that expires; the state
handed to HubSpot is `<tenant id>.<random>`, so the public callback can find the tenant
before it is authenticated, and a state from one tenant never opens another's. Tokens are
sealed per tenant (envelope encryption) and refreshed before they expire.

Scopes are the minimum ASEP writes with: contacts, companies and deals read/write (emails,
notes, tasks and meetings are written under the contact and deal scopes) and the three
schema scopes that let us create our hidden idempotency-marker property. No marketing,
tickets, files or settings scopes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.config import Settings, get_settings
from shared.crm.hubspot_api import HubSpotApi, HubSpotOAuth, Pipeline
from shared.crm.integration_orm import (
    CrmIntegration,
    CrmOAuthState,
    CrmPendingWrite,
    CrmStageMapping,
)
from shared.crm.port import CrmRejected, CrmUnavailable, DealStageIntent
from shared.crm.ratelimit import TIERS, LimiterRegistry
from shared.crm.schemas import (
    ConnectResult,
    ConnectStarted,
    HeldWrites,
    IntegrationStatus,
    StageMapping,
    StageTarget,
)
from shared.db.directory import RouteKind, register_route, resolve_tenant
from shared.db.unit_of_work import TenantUnitOfWork
from shared.errors import ASEPError, Conflict, NotFound, ValidationFailed
from shared.secrets.envelope import default_key_wrapper, open_sealed, seal
from shared.secrets.port import KeyWrapper

PROVIDER = "hubspot"
SCOPES = (
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.write",
    "crm.schemas.deals.write",
)
TOKEN_PURPOSE = "crm:hubspot:tokens"  # noqa: S105 (an AAD label, not a secret)
# Refresh this long before expiry, so a token never lapses in the middle of a push.
REFRESH_MARGIN = timedelta(minutes=5)
NOT_CONNECTED = "not_connected"
# Object types ASEP creates (not upserts by a HubSpot key), so they carry our unique marker.
MARKED_TYPES = ("companies", "deals", "emails", "notes", "tasks", "meetings")


class HubSpotNotConfigured(ValidationFailed):
    code = "hubspot_not_configured"
    title = "HubSpot is not configured on this deployment"


class InvalidOAuthState(ValidationFailed):
    code = "oauth_state_invalid"
    title = "The connection request is unknown, used or expired"


class PortalClaimed(Conflict):
    code = "hubspot_portal_claimed"
    title = "This HubSpot account is connected to another tenant"


class NotConnected(NotFound):
    code = "hubspot_not_connected"
    title = "HubSpot is not connected"


class InvalidStageMapping(ValidationFailed):
    code = "crm_stage_mapping_invalid"
    title = "The stage mapping does not match the HubSpot pipelines"


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


_limiters: dict[str, LimiterRegistry] = {}


def limiter_registry(settings: Settings) -> LimiterRegistry:
    tier = TIERS[settings.hubspot_rate_tier]
    if tier.name not in _limiters:
        _limiters[tier.name] = LimiterRegistry(tier)
    return _limiters[tier.name]


@dataclass
class HubSpotEnvironment:
    """What the HubSpot code needs from outside: settings, the KEK store, and how to build
    clients (tests point them at the fake server)."""

    settings: Settings
    wrapper: KeyWrapper
    oauth_factory: Callable[[], HubSpotOAuth]
    api_factory: Callable[[uuid.UUID, str], HubSpotApi]
    clock: Callable[[], datetime] = _now

    @classmethod
    def default(cls) -> HubSpotEnvironment:
        settings = get_settings()
        registry = limiter_registry(settings)

        def oauth() -> HubSpotOAuth:
            if not settings.hubspot_client_id or settings.hubspot_client_secret is None:
                raise HubSpotNotConfigured(
                    "Set ASEP_HUBSPOT_CLIENT_ID and ASEP_HUBSPOT_CLIENT_SECRET."
                )
            return HubSpotOAuth(
                settings.hubspot_client_id,
                settings.hubspot_client_secret.get_secret_value(),
                host=settings.hubspot_api_base_url,
            )

        def api(tenant_id: uuid.UUID, token: str) -> HubSpotApi:
            return HubSpotApi(
                token, registry.for_tenant(str(tenant_id)), host=settings.hubspot_api_base_url
            )

        return cls(settings, default_key_wrapper(), oauth, api)


def get_integration(uow: TenantUnitOfWork) -> CrmIntegration | None:
    return uow.session.scalars(
        uow.scoped(CrmIntegration).where(CrmIntegration.provider == PROVIDER)
    ).one_or_none()


def is_connected(uow: TenantUnitOfWork) -> bool:
    integration = get_integration(uow)
    return integration is not None and integration.status == "connected"


# -- OAuth -----------------------------------------------------------------------------------


def start_connect(
    uow: TenantUnitOfWork, env: HubSpotEnvironment, created_by: str
) -> ConnectStarted:
    settings = env.settings
    if not settings.hubspot_client_id or not settings.hubspot_redirect_uri:
        raise HubSpotNotConfigured("Set ASEP_HUBSPOT_CLIENT_ID and ASEP_HUBSPOT_REDIRECT_URI.")
    state = f"{uow.tenant_id}.{secrets.token_urlsafe(32)}"
    expires_at = env.clock() + timedelta(seconds=settings.hubspot_oauth_state_ttl_seconds)
    uow.add(
        CrmOAuthState(
            provider=PROVIDER, state_hash=_hash(state), created_by=created_by, expires_at=expires_at
        )
    )
    uow.flush()
    query = urlencode(
        {
            "client_id": settings.hubspot_client_id,
            "redirect_uri": settings.hubspot_redirect_uri,
            "scope": " ".join(SCOPES),
            "state": state,
        }
    )
    return ConnectStarted(
        authorize_url=f"{settings.hubspot_auth_url}?{query}", state_expires_at=expires_at
    )


def tenant_of_state(state: str) -> uuid.UUID:
    prefix, _, _ = state.partition(".")
    try:
        return uuid.UUID(prefix)
    except ValueError as exc:
        raise InvalidOAuthState() from exc


def _consume_state(uow: TenantUnitOfWork, state: str, now: datetime) -> None:
    used = uow.execute(
        update(CrmOAuthState)
        .where(
            CrmOAuthState.tenant_id == uow.tenant_id,
            CrmOAuthState.provider == PROVIDER,
            CrmOAuthState.state_hash == _hash(state),
            CrmOAuthState.used_at.is_(None),
            CrmOAuthState.expires_at > now,
        )
        .values(used_at=now)
        .returning(CrmOAuthState.id)
    ).scalar_one_or_none()
    if used is None:
        raise InvalidOAuthState()


def _store_tokens(
    integration: CrmIntegration,
    env: HubSpotEnvironment,
    access_token: str,
    refresh_token: str,
    expires_in: int,
) -> None:
    plaintext = json.dumps({"access_token": access_token, "refresh_token": refresh_token})
    integration.tokens = seal(env.wrapper, integration.tenant_id, TOKEN_PURPOSE, plaintext.encode())
    integration.access_expires_at = env.clock() + timedelta(seconds=expires_in)


def _tokens(integration: CrmIntegration, env: HubSpotEnvironment) -> tuple[str, str]:
    assert integration.tokens is not None
    opened = json.loads(
        open_sealed(env.wrapper, integration.tenant_id, TOKEN_PURPOSE, integration.tokens)
    )
    return str(opened["access_token"]), str(opened["refresh_token"])


def complete_connect(
    uow: TenantUnitOfWork, env: HubSpotEnvironment, code: str, state: str, actor: Actor
) -> ConnectResult:
    """The callback: the state is spent first, so it stays spent even if the exchange fails."""
    now = env.clock()
    _consume_state(uow, state, now)
    integration = get_integration(uow)
    if integration is None:
        integration = uow.add(CrmIntegration(provider=PROVIDER, status="disconnected", scopes=[]))
    try:
        oauth = env.oauth_factory()
        grant = oauth.exchange_code(code, env.settings.hubspot_redirect_uri or "")
        info = oauth.token_info(grant.access_token)
        api = env.api_factory(uow.tenant_id, grant.access_token)
        for object_type in MARKED_TYPES:
            api.ensure_marker_property(object_type)
    except (CrmRejected, CrmUnavailable) as exc:
        integration.last_error = str(exc)
        uow.flush()
        return ConnectResult(connected=False, error=str(exc))
    owner = resolve_tenant(uow, RouteKind.HUBSPOT_PORTAL, info.hub_id)
    if owner is not None and owner != uow.tenant_id:
        raise PortalClaimed()
    if owner is None:
        register_route(uow, RouteKind.HUBSPOT_PORTAL, info.hub_id)
    _store_tokens(integration, env, grant.access_token, grant.refresh_token, grant.expires_in)
    integration.status = "connected"
    integration.portal_id = info.hub_id
    integration.scopes = list(info.scopes)
    integration.last_error = None
    integration.connected_at = now
    uow.flush()
    replayed = release_held(uow, NOT_CONNECTED)
    AuditChain.append(
        uow,
        AuditEventType.TENANT_UPDATED,
        actor,
        {"integration": PROVIDER, "status": "connected", "portal_id": info.hub_id},
    )
    return ConnectResult(connected=True, portal_id=info.hub_id, replayed_writes=replayed)


def mark_disconnected(uow: TenantUnitOfWork, status: str, error: str) -> None:
    """Revoked or uninstalled: tokens are dropped; writes wait (held) until a reconnect."""
    integration = get_integration(uow)
    if integration is None:
        return
    integration.status = status
    integration.tokens = None
    integration.access_expires_at = None
    integration.last_error = error
    uow.flush()


def access_token(uow: TenantUnitOfWork, env: HubSpotEnvironment) -> str:
    """A usable access token, refreshed first when it expires within REFRESH_MARGIN."""
    integration = get_integration(uow)
    if integration is None or integration.status != "connected" or integration.tokens is None:
        raise CrmUnavailable("HubSpot is not connected")
    access, refresh = _tokens(integration, env)
    expires = integration.access_expires_at
    if expires is not None and expires - REFRESH_MARGIN > env.clock():
        return access
    try:
        grant = env.oauth_factory().refresh(refresh)
    except CrmRejected as exc:
        mark_disconnected(uow, "revoked", f"refresh refused: {exc}")
        raise CrmUnavailable("HubSpot refused the refresh token; reconnect the account") from exc
    _store_tokens(integration, env, grant.access_token, grant.refresh_token, grant.expires_in)
    integration.last_error = None
    uow.flush()
    return grant.access_token


def force_refresh(uow: TenantUnitOfWork, env: HubSpotEnvironment) -> str:
    integration = get_integration(uow)
    if integration is not None and integration.status == "connected":
        integration.access_expires_at = env.clock()
    return access_token(uow, env)


# -- held writes and status --------------------------------------------------------------------


def release_held(uow: TenantUnitOfWork, reason_prefix: str) -> int:
    released = uow.execute(
        update(CrmPendingWrite)
        .where(
            CrmPendingWrite.tenant_id == uow.tenant_id,
            CrmPendingWrite.provider == PROVIDER,
            CrmPendingWrite.status == "held",
            CrmPendingWrite.reason.startswith(reason_prefix),
        )
        .values(status="pending", reason=None, claimed_at=None)
        .returning(CrmPendingWrite.id)
    ).all()
    return len(released)


def status(uow: TenantUnitOfWork) -> IntegrationStatus:
    integration = get_integration(uow)
    counts = uow.execute(
        select(CrmPendingWrite.status, CrmPendingWrite.reason, func.count())
        .where(CrmPendingWrite.tenant_id == uow.tenant_id, CrmPendingWrite.status != "done")
        .group_by(CrmPendingWrite.status, CrmPendingWrite.reason)
    ).all()
    pending = sum(n for s, _, n in counts if s == "pending")
    rejected = sum(n for s, _, n in counts if s == "rejected")
    held = [HeldWrites(reason=r or "", count=n) for s, r, n in counts if s == "held"]
    if integration is None:
        return IntegrationStatus(
            provider=PROVIDER,
            connected=False,
            status="disconnected",
            pending_writes=pending,
            held_writes=held,
            rejected_writes=rejected,
        )
    return IntegrationStatus(
        provider=PROVIDER,
        connected=integration.status == "connected",
        status=integration.status,
        portal_id=integration.portal_id,
        scopes=list(integration.scopes),
        last_error=integration.last_error,
        connected_at=integration.connected_at,
        pending_writes=pending,
        held_writes=held,
        rejected_writes=rejected,
    )


# -- stage mapping -----------------------------------------------------------------------------


def stage_mapping(uow: TenantUnitOfWork) -> StageMapping:
    rows = uow.session.scalars(
        uow.scoped(CrmStageMapping).where(CrmStageMapping.provider == PROVIDER)
    ).all()
    return StageMapping(
        stages={
            DealStageIntent(r.intent): StageTarget(pipeline_id=r.pipeline_id, stage_id=r.stage_id)
            for r in rows
        }
    )


def validate_stage_mapping(mapping: StageMapping, pipelines: list[Pipeline]) -> list[str]:
    by_id = {p.id: p for p in pipelines}
    problems = []
    for intent, target in mapping.stages.items():
        pipeline = by_id.get(target.pipeline_id)
        if pipeline is None:
            problems.append(f"{intent.value}: no deal pipeline {target.pipeline_id!r}")
        elif target.stage_id not in pipeline.stages:
            problems.append(
                f"{intent.value}: pipeline {pipeline.label!r} has no stage {target.stage_id!r}"
            )
    return problems


def put_stage_mapping(
    uow: TenantUnitOfWork, env: HubSpotEnvironment, mapping: StageMapping, actor: Actor
) -> StageMapping:
    problems = validate_stage_mapping(mapping, pipelines_for_validation(uow, env))
    if problems:
        raise InvalidStageMapping("; ".join(problems))
    uow.execute(
        delete(CrmStageMapping).where(
            CrmStageMapping.tenant_id == uow.tenant_id, CrmStageMapping.provider == PROVIDER
        )
    )
    for intent, target in mapping.stages.items():
        uow.execute(
            insert(CrmStageMapping).values(
                id=uuid.uuid4(),
                tenant_id=uow.tenant_id,
                provider=PROVIDER,
                intent=intent.value,
                pipeline_id=target.pipeline_id,
                stage_id=target.stage_id,
            )
        )
    released = release_held(uow, "no_stage_mapping")
    AuditChain.append(
        uow,
        AuditEventType.TENANT_UPDATED,
        actor,
        {
            "integration": PROVIDER,
            "stage_mapping": {i.value: t.stage_id for i, t in mapping.stages.items()},
            "released_deals": released,
        },
    )
    return stage_mapping(uow)


class CrmServiceUnavailable(ASEPError):
    status = 503
    code = "crm_unavailable"
    title = "HubSpot could not be reached"


def pipelines_for_validation(uow: TenantUnitOfWork, env: HubSpotEnvironment) -> list[Pipeline]:
    try:
        token = access_token(uow, env)
        return env.api_factory(uow.tenant_id, token).deal_pipelines()
    except CrmRejected as exc:
        raise CrmServiceUnavailable(str(exc)) from exc
    except CrmUnavailable as exc:
        if not is_connected(uow):
            raise NotConnected("Connect HubSpot before mapping deal stages.") from exc
        raise CrmServiceUnavailable(str(exc)) from exc
