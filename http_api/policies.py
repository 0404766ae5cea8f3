"""Policy packs, dry runs, backtests and the kill switch (issue 5)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, status

from http_api.auth import TenantContext, require_permission
from shared.errors import ValidationFailed
from shared.identity.permissions import Permission
from shared.policy import kill_switch, service
from shared.policy.kill_switch import LoggingOrchestrationSignal, OrchestrationSignal
from shared.policy.schemas import (
    BacktestReport,
    BacktestRequest,
    KillSwitchChange,
    KillSwitchStatus,
    PolicyPackDetail,
    PolicyPackList,
    PolicyPackRead,
    PolicyTestRequest,
    PolicyTestResult,
)

router = APIRouter(tags=["policies"])

_PACK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


async def pack_text(request: Request) -> str:
    """The request body as text: a YAML pack, or a JSON one (JSON is YAML)."""
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("The policy pack must be UTF-8 text.") from exc


def orchestration_signal(request: Request) -> OrchestrationSignal:
    signal: OrchestrationSignal | None = getattr(request.app.state, "orchestration_signal", None)
    return signal or LoggingOrchestrationSignal()


@router.get("/policies")
def list_policies(
    ctx: Annotated[TenantContext, require_permission(Permission.POLICIES_READ)],
) -> PolicyPackList:
    return service.list_packs(ctx.uow)


@router.post("/policies", status_code=status.HTTP_201_CREATED, openapi_extra=_PACK_BODY)
def create_policy_version(
    text: Annotated[str, Depends(pack_text)],
    ctx: Annotated[TenantContext, require_permission(Permission.POLICIES_WRITE)],
) -> PolicyPackRead:
    return service.save_pack(ctx.uow, text, ctx.actor)


@router.post("/policies/test")
def test_policy(
    body: PolicyTestRequest,
    ctx: Annotated[TenantContext, require_permission(Permission.POLICIES_READ)],
) -> PolicyTestResult:
    return service.dry_run(ctx.uow, body)


@router.post("/policies/backtest")
def backtest_policy(
    body: BacktestRequest,
    ctx: Annotated[TenantContext, require_permission(Permission.POLICIES_READ)],
) -> BacktestReport:
    return service.backtest(ctx.uow, body)


@router.get("/policies/{version_id}")
def get_policy_version(
    version_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.POLICIES_READ)],
) -> PolicyPackDetail:
    return service.get_pack(ctx.uow, version_id)


@router.post("/policies/{version_id}/activate")
def activate_policy_version(
    version_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.POLICIES_ACTIVATE)],
) -> PolicyPackRead:
    return service.activate_pack(ctx.uow, version_id, ctx.actor)


@router.get("/kill-switch")
def get_kill_switch(
    ctx: Annotated[TenantContext, require_permission(Permission.POLICIES_READ)],
) -> KillSwitchStatus:
    return kill_switch.kill_switch_status(ctx.uow)


@router.post("/kill-switch")
def activate_kill_switch(
    body: KillSwitchChange,
    background: BackgroundTasks,
    signal: Annotated[OrchestrationSignal, Depends(orchestration_signal)],
    ctx: Annotated[TenantContext, require_permission(Permission.KILL_SWITCH)],
) -> KillSwitchStatus:
    state = kill_switch.activate_kill_switch(ctx.uow, body, ctx.actor)
    # Background tasks run after the response, so after the transaction has committed.
    background.add_task(signal.signal_kill_switch, ctx.tenant_id, body.campaign_id)
    return state


@router.delete("/kill-switch")
def release_kill_switch(
    background: BackgroundTasks,
    signal: Annotated[OrchestrationSignal, Depends(orchestration_signal)],
    ctx: Annotated[TenantContext, require_permission(Permission.KILL_SWITCH)],
    campaign_id: uuid.UUID | None = None,
) -> KillSwitchStatus:
    change = KillSwitchChange(campaign_id=campaign_id)
    state = kill_switch.release_kill_switch(ctx.uow, change, ctx.actor)
    background.add_task(signal.signal_kill_switch, ctx.tenant_id, campaign_id)
    return state
