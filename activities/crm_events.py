"""CRM functions: HubSpot webhook events from the `crm-events` queue, and a one-minute timer
pushing every HubSpot tenant's queued CRM writes (which also replays held writes after a
reconnect)."""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from shared.crm import webhooks
from shared.crm.hubspot import hubspot_tenants, push_pending

log = logging.getLogger("asep.crm.functions")

blueprint = df.Blueprint()


@blueprint.service_bus_queue_trigger(
    arg_name="msg", queue_name=webhooks.CRM_EVENTS_QUEUE, connection="ServiceBusConnection"
)
def crm_events(msg: func.ServiceBusMessage) -> None:
    outcome = webhooks.process_message(msg.get_body())
    log.info("crm event processed", extra={"message_id": msg.message_id, "outcome": outcome})


@blueprint.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False)
def push_crm_writes_timer(timer: func.TimerRequest) -> None:
    for tenant_id in hubspot_tenants():
        try:
            report = push_pending(tenant_id)
        except Exception:
            # One tenant's failure must not stop the others' pushes; it retries next minute.
            log.exception("crm push failed", extra={"tenant_id": str(tenant_id)})
            continue
        if report.claimed:
            log.info(
                "crm push",
                extra={
                    "tenant_id": str(tenant_id),
                    "done": report.done,
                    "rejected": report.rejected,
                    "held": report.held,
                    "pending": report.left_pending,
                    "reconciled": report.reconciled,
                    "requests": report.requests,
                    "throttled": report.throttled,
                },
            )
