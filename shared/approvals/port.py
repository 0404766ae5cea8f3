"""How a decision reaches the orchestration waiting for it.

In the app this is `http_api.orchestration_bridge.DurableApprovalSink`, which raises the
`approval` event the campaign and deal orchestrators wait for; tests use the in-memory fake.
A decision is delivered only after the transaction that recorded it commits, so an
orchestration never acts on a decision that rolled back; if delivery fails after the commit,
the orchestration's approval timer ends the wait and holds the journey or deal (the recorded
decision stays readable through `get_approval`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from shared.approvals.schemas import ApprovalOutcome


class ApprovalDecisionSink(Protocol):
    def deliver(
        self,
        tenant_id: uuid.UUID,
        approval_id: uuid.UUID,
        orchestration_instance_id: str,
        decision: ApprovalOutcome,
    ) -> None: ...


@dataclass(frozen=True)
class DeliveredDecision:
    tenant_id: uuid.UUID
    approval_id: uuid.UUID
    orchestration_instance_id: str
    decision: ApprovalOutcome


@dataclass
class InMemoryApprovalDecisionSink:
    delivered: list[DeliveredDecision] = field(default_factory=list)

    def deliver(
        self,
        tenant_id: uuid.UUID,
        approval_id: uuid.UUID,
        orchestration_instance_id: str,
        decision: ApprovalOutcome,
    ) -> None:
        self.delivered.append(
            DeliveredDecision(tenant_id, approval_id, orchestration_instance_id, decision)
        )
