"""CRM integrations (seed §14.3): HubSpot connect and callback, status, stage mapping."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from http_api.auth import TenantContext, public_endpoint, require_permission
from shared.audit.schemas import Actor, ActorType
from shared.crm import integrations
from shared.crm.integrations import HubSpotEnvironment
from shared.crm.schemas import ConnectResult, ConnectStarted, IntegrationStatus, StageMapping
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity.permissions import Permission

router = APIRouter(prefix="/integrations", tags=["integrations"])
CALLBACK_ACTOR = Actor(type=ActorType.SYSTEM, id="hubspot-oauth-callback", display="HubSpot")


def hubspot_environment() -> HubSpotEnvironment:
    return HubSpotEnvironment.default()


Env = Annotated[HubSpotEnvironment, Depends(hubspot_environment)]


@router.post("/hubspot/connect")
def connect_hubspot(
    ctx: Annotated[TenantContext, require_permission(Permission.INTEGRATIONS_WRITE)], env: Env
) -> ConnectStarted:
    return integrations.start_connect(ctx.uow, env, created_by=ctx.actor.id)


def _complete(env: HubSpotEnvironment, code: str, state: str) -> ConnectResult:
    with tenant_unit_of_work(integrations.tenant_of_state(state)) as uow:
        return integrations.complete_connect(uow, env, code, state, CALLBACK_ACTOR)


@router.get("/hubspot/callback")
async def hubspot_callback(
    _: Annotated[None, public_endpoint()],
    env: Env,
    code: Annotated[str, Query(min_length=1, max_length=512)],
    state: Annotated[str, Query(min_length=1, max_length=200)],
) -> ConnectResult:
    # The browser arrives from HubSpot without our credentials: the single-use state,
    # bound to the tenant that started the connection, is what authenticates it.
    return await run_in_threadpool(_complete, env, code, state)


@router.get("/status")
def integration_status(
    ctx: Annotated[TenantContext, require_permission(Permission.INTEGRATIONS_READ)],
) -> IntegrationStatus:
    return integrations.status(ctx.uow)


@router.get("/crm/mapping")
def get_stage_mapping(
    ctx: Annotated[TenantContext, require_permission(Permission.INTEGRATIONS_READ)],
) -> StageMapping:
    return integrations.stage_mapping(ctx.uow)


@router.put("/crm/mapping")
def put_stage_mapping(
    body: StageMapping,
    ctx: Annotated[TenantContext, require_permission(Permission.INTEGRATIONS_WRITE)],
    env: Env,
) -> StageMapping:
    return integrations.put_stage_mapping(ctx.uow, env, body, ctx.actor)
