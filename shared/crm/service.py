"""Picking the tenant's CRM adapter, and auditing what it wrote."""

from __future__ import annotations

from typing import Protocol

from shared.audit.schemas import Actor, AuditEventIn, AuditEventType
from shared.audit.service import AuditChain
from shared.crm.internal import InternalCrm
from shared.crm.port import CrmAdapter, CrmWrite
from shared.db.unit_of_work import TenantUnitOfWork


def crm_for(uow: TenantUnitOfWork) -> CrmAdapter:
    """The tenant's CRM, chosen from its integration record: HubSpot once the tenant has
    connected it (also while disconnected or revoked, so writes are held for the reconnect),
    otherwise ASEP's internal records alone."""
    # Imported here: the HubSpot provider audits its pushes through this module.
    from shared.crm.hubspot import HubSpotCrm
    from shared.crm.integrations import get_integration

    if get_integration(uow) is not None:
        return HubSpotCrm(uow)
    return InternalCrm(uow)


class WriteLog(Protocol):
    provider: str

    def writes(self) -> list[CrmWrite]: ...


def audit_crm_writes(
    uow: TenantUnitOfWork, crm: WriteLog, actor: Actor, correlation_id: str | None = None
) -> int:
    """CRM_LOGGED for every write the adapter made, tagged with its provider, so a customer
    can find (and undo) everything ASEP wrote to their CRM."""
    writes = crm.writes()
    if not writes:
        return 0
    # One head lock and one insert for the lot: a campaign push audits thousands of writes.
    AuditChain.append_many(
        uow,
        [
            AuditEventIn(
                event_type=AuditEventType.CRM_LOGGED,
                actor=actor,
                payload={
                    "provider": crm.provider,
                    "operation": write.operation,
                    "object_type": write.object_type,
                    "external_id": write.external_id,
                    "idempotency_key": write.idempotency_key,
                    "origin": "asep",
                    **write.details,
                },
                correlation_id=correlation_id,
            )
            for write in writes
        ],
    )
    return len(writes)
