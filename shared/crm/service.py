"""Picking the tenant's CRM adapter, and auditing what it wrote."""

from __future__ import annotations

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.crm.internal import InternalCrm
from shared.crm.port import CrmAdapter
from shared.db.unit_of_work import TenantUnitOfWork


def crm_for(uow: TenantUnitOfWork) -> CrmAdapter:
    """The tenant's CRM. Until a tenant connects one (the HubSpot issue adds the choice from
    its integration record), ASEP's internal records are its CRM."""
    return InternalCrm(uow)


def audit_crm_writes(
    uow: TenantUnitOfWork, crm: CrmAdapter, actor: Actor, correlation_id: str | None = None
) -> int:
    """CRM_LOGGED for every write the adapter made, tagged with its provider, so a customer
    can find (and undo) everything ASEP wrote to their CRM."""
    writes = crm.writes()
    for write in writes:
        AuditChain.append(
            uow,
            AuditEventType.CRM_LOGGED,
            actor,
            {
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
    return len(writes)
