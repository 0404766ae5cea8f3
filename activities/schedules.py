"""Timer-triggered maintenance: audit checkpoints and approval expiry.

Like activities, these are thin: they walk the tenant directory and call services, one
tenant unit of work at a time (ARCHITECTURE.md §6, work across tenants).
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from shared.approvals.service import expire_due_approvals
from shared.audit.checkpoints import run_checkpoints
from shared.audit.schemas import Actor, ActorType
from shared.db.directory import all_tenant_ids
from shared.db.unit_of_work import directory_unit_of_work, tenant_unit_of_work

log = logging.getLogger(__name__)
blueprint = df.Blueprint()
SCHEDULER = Actor(type=ActorType.SYSTEM, id="scheduler")


# Checkpoint lag stays under 5 minutes (the audit log's target; Azure SQL ledger digests 30 s).
@blueprint.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def audit_checkpoints(timer: func.TimerRequest) -> None:
    summary = run_checkpoints()
    if summary.failed:
        log.error("audit checkpoints: %d chains failed", summary.failed)


@blueprint.timer_trigger(arg_name="timer", schedule="0 * * * * *")
def approval_expiry(timer: func.TimerRequest) -> None:
    # Waiting journeys end on their own timeout timer, set to the same TTL; this marks the
    # records so approvers stop seeing them as pending.
    with directory_unit_of_work() as duow:
        tenants = list(all_tenant_ids(duow))
    expired = 0
    for tenant_id in tenants:
        with tenant_unit_of_work(tenant_id) as uow:
            expired += expire_due_approvals(uow, None, SCHEDULER)
    if expired:
        log.info("expired %d approvals", expired)
