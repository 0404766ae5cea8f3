"""Approvals: request, decide (approve / reject), expire; and "approve once" step templates.

Decisions lock the approval row, so two approvers clicking at once decide in turn and the
second gets a conflict. Each state change is audited in the same transaction, and the
waiting orchestration hears about it only after that transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from shared.approvals import repository
from shared.approvals.orm import Approval, ApprovedStepTemplate
from shared.approvals.port import ApprovalDecisionSink
from shared.approvals.schemas import (
    ApprovalMode,
    ApprovalOutcome,
    ApprovalPage,
    ApprovalRead,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalSummary,
    ApproveBody,
    RejectBody,
)
from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.config import get_settings
from shared.db.unit_of_work import TenantUnitOfWork
from shared.errors import Conflict, Forbidden, NotFound
from shared.execution.schemas import journey_instance_id
from shared.identity import repository as identity_repository
from shared.pagination import decode_time_cursor, encode_time_cursor

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

Clock = Callable[[], datetime]
FOUR_EYES_SETTING = "approvals_four_eyes"


def utc_now() -> datetime:
    return datetime.now(UTC)


class ApprovalNotFound(NotFound):
    code = "approval_not_found"
    title = "Approval not found"


class ApprovalNotPending(Conflict):
    code = "approval_not_pending"
    title = "Approval already decided"


class ApprovalExpired(Conflict):
    code = "approval_expired"
    title = "Approval expired"


class FourEyesRequired(Forbidden):
    code = "four_eyes_required"
    title = "Another person must decide"


def _actor_json(actor: Actor) -> dict[str, Any]:
    return actor.to_json()


def _journey(approval: Approval) -> str | None:
    """The correlation id of the prospect's journey the approval belongs to, if any: its
    request, decision and expiry belong in that journey's audit trail."""
    if approval.campaign_id is None or approval.prospect_id is None:
        return None
    return journey_instance_id(approval.campaign_id, approval.prospect_id)


def _audit_payload(approval: Approval) -> dict[str, Any]:
    return {
        "approval_id": str(approval.id),
        "action_kind": approval.action_kind,
        "action_id": approval.action_id,
        "campaign_id": str(approval.campaign_id) if approval.campaign_id else None,
        "sequence_step": approval.sequence_step,
        "prospect_id": str(approval.prospect_id) if approval.prospect_id else None,
        "mode": approval.mode,
        "status": approval.status,
    }


def _deliver_after_commit(
    uow: TenantUnitOfWork, sink: ApprovalDecisionSink | None, approval: Approval
) -> None:
    if sink is None or not approval.orchestration_instance_id:
        return
    assert approval.decided_at is not None
    outcome = ApprovalOutcome(
        approval_id=approval.id,
        action_kind=approval.action_kind,
        action_id=approval.action_id,
        status=ApprovalStatus(approval.status),
        reason=approval.reason,
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
    )
    tenant_id, instance_id = uow.tenant_id, approval.orchestration_instance_id

    def deliver(_session: Session) -> None:
        sink.deliver(tenant_id, outcome.approval_id, instance_id, outcome)

    event.listen(uow.session, "after_commit", deliver, once=True)


def request_approval(
    uow: TenantUnitOfWork,
    request: ApprovalRequest,
    actor: Actor,
    *,
    clock: Clock = utc_now,
) -> ApprovalRead:
    """Open an approval for an action, or return the one already opened for it."""
    existing = repository.find_by_action(uow, request.action_kind, request.action_id)
    if existing is not None:
        return ApprovalRead.model_validate(existing)
    ttl = request.ttl_seconds or get_settings().approval_ttl_seconds
    fields = request.model_dump(exclude={"ttl_seconds"})
    approval = uow.add(
        Approval(
            **fields,
            id=uuid.uuid4(),
            status=ApprovalStatus.PENDING.value,
            requested_by=_actor_json(actor),
            expires_at=clock() + timedelta(seconds=ttl),
        )
    )
    try:
        with uow.session.begin_nested():
            uow.flush()
    except IntegrityError:
        # Another attempt of the same activity opened it first; theirs is the request.
        uow.session.expunge(approval)
        raced = repository.find_by_action(uow, request.action_kind, request.action_id)
        assert raced is not None
        return ApprovalRead.model_validate(raced)
    AuditChain.append(
        uow,
        AuditEventType.APPROVAL_REQUESTED,
        actor,
        {**_audit_payload(approval), "expires_at": approval.expires_at.isoformat()},
        correlation_id=_journey(approval),
    )
    return ApprovalRead.model_validate(approval)


def get_approval(uow: TenantUnitOfWork, approval_id: uuid.UUID) -> ApprovalRead:
    approval = uow.get(Approval, approval_id)
    if approval is None:
        raise ApprovalNotFound()
    return ApprovalRead.model_validate(approval)


def list_approvals(
    uow: TenantUnitOfWork,
    *,
    status: ApprovalStatus | None,
    campaign_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> ApprovalPage:
    """Newest first."""
    rows = repository.list_approvals(
        uow,
        status=status.value if status else None,
        campaign_id=campaign_id,
        before=decode_time_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    items = [ApprovalSummary.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    return ApprovalPage(
        items=items,
        next_cursor=encode_time_cursor(items[-1].created_at, items[-1].id) if more else None,
    )


def _pending_for_decision(
    uow: TenantUnitOfWork, approval_id: uuid.UUID, actor: Actor, now: datetime
) -> Approval:
    approval = repository.get_for_update(uow, approval_id)
    if approval is None:
        raise ApprovalNotFound()
    if approval.status != ApprovalStatus.PENDING.value:
        raise ApprovalNotPending(f"This approval is already {approval.status}.")
    if approval.expires_at <= now:
        raise ApprovalExpired("This approval expired; the action was not taken.")
    tenant = identity_repository.get_current_tenant(uow)
    four_eyes = bool(tenant is not None and tenant.settings.get(FOUR_EYES_SETTING))
    requester = approval.requested_by
    if four_eyes and requester.get("type") == actor.type.value and requester.get("id") == actor.id:
        raise FourEyesRequired("This tenant requires someone other than the requester to decide.")
    return approval


def approve(
    uow: TenantUnitOfWork,
    approval_id: uuid.UUID,
    body: ApproveBody,
    actor: Actor,
    sink: ApprovalDecisionSink | None,
    *,
    clock: Clock = utc_now,
) -> ApprovalRead:
    now = clock()
    approval = _pending_for_decision(uow, approval_id, actor, now)
    mode: ApprovalMode = body.mode or approval.mode  # type: ignore[assignment]
    approval.status = ApprovalStatus.APPROVED.value
    approval.mode = mode
    approval.decided_by = _actor_json(actor)
    approval.decided_at = now
    approval.reason = body.reason
    template_recorded = False
    if mode == "once":
        template_recorded = _approve_template(uow, approval, actor)
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.APPROVAL_GRANTED,
        actor,
        {**_audit_payload(approval), "step_template_approved": template_recorded},
        correlation_id=_journey(approval),
    )
    _deliver_after_commit(uow, sink, approval)
    return ApprovalRead.model_validate(approval)


def _approve_template(uow: TenantUnitOfWork, approval: Approval, actor: Actor) -> bool:
    if approval.campaign_id is None or approval.sequence_step is None or not approval.template_hash:
        return False
    existing = repository.find_template(
        uow, approval.campaign_id, approval.sequence_step, approval.template_hash
    )
    if existing is not None:
        existing.revoked_at = None
        return True
    uow.add(
        ApprovedStepTemplate(
            campaign_id=approval.campaign_id,
            sequence_step=approval.sequence_step,
            template_hash=approval.template_hash,
            approval_id=approval.id,
            approved_by=_actor_json(actor),
        )
    )
    return True


def reject(
    uow: TenantUnitOfWork,
    approval_id: uuid.UUID,
    body: RejectBody,
    actor: Actor,
    sink: ApprovalDecisionSink | None,
    *,
    clock: Clock = utc_now,
) -> ApprovalRead:
    now = clock()
    approval = _pending_for_decision(uow, approval_id, actor, now)
    approval.status = ApprovalStatus.REJECTED.value
    approval.decided_by = _actor_json(actor)
    approval.decided_at = now
    approval.reason = body.reason
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.APPROVAL_REJECTED,
        actor,
        {**_audit_payload(approval), "reason": body.reason},
        correlation_id=_journey(approval),
    )
    _deliver_after_commit(uow, sink, approval)
    return ApprovalRead.model_validate(approval)


def expire_due_approvals(
    uow: TenantUnitOfWork,
    sink: ApprovalDecisionSink | None,
    actor: Actor,
    *,
    clock: Clock = utc_now,
    limit: int = 500,
) -> int:
    """Expire this tenant's overdue pending approvals (a timer calls this per tenant)."""
    expired = repository.expire_due(uow, clock(), limit)
    for approval in expired:
        AuditChain.append(
            uow,
            AuditEventType.APPROVAL_EXPIRED,
            actor,
            _audit_payload(approval),
            correlation_id=_journey(approval),
        )
        _deliver_after_commit(uow, sink, approval)
    return len(expired)
