"""Durable implementations of the ports that wake orchestrations from a request.

They run after the request's transaction commits (after-commit hooks, background tasks), in
a worker thread of the request's event loop, with the host's durable client of that request;
`anyio.from_thread.run` hands the client's coroutines back to that loop.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio.from_thread
from sqlalchemy import select

from http_api.durable import durable_client_var
from shared.approvals.schemas import ApprovalOutcome
from shared.config import get_settings
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deals.schemas import ReplyToDealInput
from shared.execution.control import live_instances
from shared.execution.orchestrations import DurableOrchestrations
from shared.execution.schemas import journey_instance_id
from shared.mail.inbound import ReplyEvent
from shared.policy.kill_switch import kill_switch_state
from shared.replies.orm import Reply

log = logging.getLogger(__name__)


def _start(orchestrator: str, instance_id: str, payload: dict[str, Any]) -> None:
    client = durable_client_var.get()
    if client is None:
        log.warning("no durable client in this request: %s not started", instance_id)
        return
    orchestrations = DurableOrchestrations(client)
    anyio.from_thread.run(orchestrations.start_once, orchestrator, instance_id, payload)


def raise_event(instance_id: str, event: str, payload: dict[str, Any]) -> None:
    """Raise `event` with the request's durable client (call after the state it reports has
    committed)."""
    client = durable_client_var.get()
    if client is None:
        log.warning("no durable client in this request: %s not raised to %s", event, instance_id)
        return
    anyio.from_thread.run(DurableOrchestrations(client).raise_event, instance_id, event, payload)


class DurableApprovalSink:
    def deliver(
        self,
        tenant_id: uuid.UUID,
        approval_id: uuid.UUID,
        orchestration_instance_id: str,
        decision: ApprovalOutcome,
    ) -> None:
        raise_event(orchestration_instance_id, "approval", decision.model_dump(mode="json"))


class DurableKillSwitchSignal:
    def signal_kill_switch(self, tenant_id: uuid.UUID, campaign_id: uuid.UUID | None) -> None:
        with tenant_unit_of_work(tenant_id) as uow:
            tenant_active, campaign_active = kill_switch_state(uow, campaign_id)
            instances = live_instances(uow, None if tenant_active else campaign_id)
        if not (tenant_active or campaign_active):
            return  # a release: stopped journeys stay stopped; new starts go through policy
        for instance_id in instances:
            raise_event(instance_id, "stop", {"reason": "kill switch"})


class DurableReplySignal:
    def raise_reply(self, event: ReplyEvent) -> None:
        if event.campaign_id is not None and event.prospect_id is not None:
            self._stop_journey(event, event.campaign_id, event.prospect_id)
        # After the stop, so nothing here can delay it. The instance id is the message's: a
        # signal raised again (it stays pending until this returns) finds the same instance.
        flow = ReplyToDealInput(
            tenant_id=event.tenant_id,
            inbound_id=event.inbound_id,
            approval_timeout_seconds=get_settings().approval_ttl_seconds,
            correlation_id=event.correlation_id,
        )
        _start("reply_to_deal", flow.instance_id, flow.model_dump(mode="json"))

    def _stop_journey(
        self, event: ReplyEvent, campaign_id: uuid.UUID, prospect_id: uuid.UUID
    ) -> None:
        # The stop reason is the reply's classification (stored with the message's arrival).
        with tenant_unit_of_work(event.tenant_id) as uow:
            label = uow.session.scalar(
                select(Reply.label).where(
                    Reply.tenant_id == event.tenant_id, Reply.inbound_id == event.inbound_id
                )
            )
        raise_event(
            journey_instance_id(campaign_id, prospect_id),
            "stop",
            {"reason": label or "reply", "inbound_id": str(event.inbound_id)},
        )
