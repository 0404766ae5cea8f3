"""The kill switch, tenant-wide and per campaign (issue 5 §6).

"From the moment its activation commits, every policy check denies." Every policy check
reads the tenant's switch row `FOR SHARE` (`kill_switch_state`), and every activation or
release, of the tenant switch or of a campaign's, updates that row. The update waits for
the decisions in flight (they commit first, so they were made before the activation), and a
decision that starts while the update is pending waits for it and then reads the new state.
Campaign rows are read after the tenant row's lock is held, in a new statement snapshot, so
they are seen as of at least the activation's commit.

Running orchestrations are told through `OrchestrationSignal` after the change commits;
a lost signal only delays a stop until the orchestration's next policy check, which denies.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork
from shared.errors import NotFound
from shared.policy import repository
from shared.policy.repository import ActiveRef
from shared.policy.schemas import KillSwitchChange, KillSwitchScopeState, KillSwitchStatus

log = logging.getLogger(__name__)


class CampaignNotFound(NotFound):
    code = "campaign_not_found"
    title = "Campaign not found"


class OrchestrationSignal(Protocol):
    """Tells running orchestrations that a kill switch changed (the durable client's
    `raise_event` in the app)."""

    def signal_kill_switch(self, tenant_id: uuid.UUID, campaign_id: uuid.UUID | None) -> None: ...


@dataclass
class InMemoryOrchestrationSignal:
    """Records signals instead of sending them: for tests and for hosts without orchestrations."""

    signals: list[tuple[uuid.UUID, uuid.UUID | None]] = field(default_factory=list)

    def signal_kill_switch(self, tenant_id: uuid.UUID, campaign_id: uuid.UUID | None) -> None:
        self.signals.append((tenant_id, campaign_id))


class LoggingOrchestrationSignal:
    """The fallback when an app has no signal configured (`create_app` wires the durable one):
    says so in the log, every time."""

    def signal_kill_switch(self, tenant_id: uuid.UUID, campaign_id: uuid.UUID | None) -> None:
        log.warning(
            "kill switch changed for tenant %s campaign %s: no orchestration signal is "
            "configured; orchestrations stop at their next policy check",
            tenant_id,
            campaign_id,
        )


def _campaign_uuid(campaign_id: str | uuid.UUID | None) -> uuid.UUID | None:
    if campaign_id is None or isinstance(campaign_id, uuid.UUID):
        return campaign_id
    if not campaign_id:
        return None
    try:
        return uuid.UUID(campaign_id)
    except ValueError:
        return None  # not a campaign this tenant could have switched off


@dataclass(frozen=True, eq=False)
class DecisionGuard:
    """The kill switch state as read `FOR SHARE` in one transaction, with the active pack's
    reference read in the same statement. Taken once per transaction by the gate and handed
    to `decide`, which reuses it only in the transaction that holds the lock."""

    tenant_active: bool
    campaign_active: bool
    campaign_id: uuid.UUID | None
    active_pack: ActiveRef | None
    transaction: object

    @property
    def kill_switches(self) -> tuple[bool, bool]:
        return self.tenant_active, self.campaign_active

    def holds_for(self, uow: TenantUnitOfWork, campaign_id: str | uuid.UUID | None) -> bool:
        """Whether this guard's lock is held by `uow`'s transaction and covers `campaign_id`."""
        return (
            self.transaction is uow.session.get_transaction()
            and self.campaign_id == _campaign_uuid(campaign_id)
        )


def take_decision_guard(
    uow: TenantUnitOfWork, campaign_id: str | uuid.UUID | None = None
) -> DecisionGuard:
    """Lock the tenant's switch row FOR SHARE (until the transaction ends), then read the
    campaign's switch in a later statement, so it is seen as of at least the commit of any
    activation the lock waited for."""
    tenant_active, active_pack = repository.lock_tenant_switch_and_active_pack(uow)
    return guard_after_lock(uow, campaign_id, tenant_active, active_pack)


def guard_after_lock(
    uow: TenantUnitOfWork,
    campaign_id: str | uuid.UUID | None,
    tenant_active: bool,
    active_pack: ActiveRef | None,
) -> DecisionGuard:
    """The guard of a transaction that has just locked its tenant's switch row FOR SHARE
    (with `repository.GUARD_*`) and read `tenant_active` and `active_pack` from it:
    reads the campaign's switch, in a statement after the lock."""
    campaign = _campaign_uuid(campaign_id)
    campaign_active = campaign is not None and repository.campaign_switch_active(uow, campaign)
    return guard_with_campaign_state(uow, campaign, tenant_active, active_pack, campaign_active)


def guard_with_campaign_state(
    uow: TenantUnitOfWork,
    campaign_id: str | uuid.UUID | None,
    tenant_active: bool,
    active_pack: ActiveRef | None,
    campaign_active: bool,
) -> DecisionGuard:
    """`guard_after_lock` for a caller that read the campaign's switch itself, in a statement
    after the lock (the gate reads it together with the campaign row)."""
    return DecisionGuard(
        tenant_active=tenant_active,
        campaign_active=campaign_active,
        campaign_id=_campaign_uuid(campaign_id),
        active_pack=active_pack,
        transaction=uow.session.get_transaction(),
    )


def kill_switch_state(
    uow: TenantUnitOfWork, campaign_id: str | uuid.UUID | None = None
) -> tuple[bool, bool]:
    """(tenant switch active, campaign switch active), read inside the caller's transaction.

    Holds a share lock on the tenant's switch row until that transaction ends: call it in
    the same unit of work as the decision it guards (`decide` does)."""
    return take_decision_guard(uow, campaign_id).kill_switches


def _now() -> datetime:
    return datetime.now(UTC)


def _change(
    uow: TenantUnitOfWork, change: KillSwitchChange, actor: Actor, *, active: bool
) -> KillSwitchStatus:
    actor_json = actor.to_json()
    reason = change.reason or None
    now = _now()
    if change.campaign_id is None:
        was_active = repository.write_tenant_switch(
            uow, active=active, reason=reason, actor=actor_json, changed_at=now
        )
    else:
        if not repository.campaign_exists(uow, change.campaign_id):
            raise CampaignNotFound(f"No campaign {change.campaign_id}.")
        # Taking the tenant row first is what makes in-flight decisions finish before this.
        repository.write_tenant_switch(
            uow, active=None, reason=None, actor=actor_json, changed_at=now
        )
        was_active = repository.write_campaign_switch(
            uow, change.campaign_id, active=active, reason=reason, actor=actor_json, changed_at=now
        )
    AuditChain.append(
        uow,
        AuditEventType.KILL_SWITCH_ACTIVATED if active else AuditEventType.KILL_SWITCH_RELEASED,
        actor,
        {
            "scope": "tenant" if change.campaign_id is None else "campaign",
            "campaign_id": str(change.campaign_id) if change.campaign_id else None,
            "reason": reason,
            "was_active": was_active,
        },
    )
    return kill_switch_status(uow)


def activate_kill_switch(
    uow: TenantUnitOfWork, change: KillSwitchChange, actor: Actor
) -> KillSwitchStatus:
    """Activate the tenant switch (or a campaign's). Signal orchestrations after commit."""
    return _change(uow, change, actor, active=True)


def release_kill_switch(
    uow: TenantUnitOfWork, change: KillSwitchChange, actor: Actor
) -> KillSwitchStatus:
    return _change(uow, change, actor, active=False)


def kill_switch_status(uow: TenantUnitOfWork) -> KillSwitchStatus:
    row = repository.tenant_switch(uow)
    tenant = KillSwitchScopeState(
        campaign_id=None,
        active=bool(row and row.active),
        reason=row.reason if row else None,
        changed_at=row.changed_at if row else None,
        changed_by=row.changed_by if row else None,
    )
    campaigns = [
        KillSwitchScopeState(
            campaign_id=switch.campaign_id,
            active=switch.active,
            reason=switch.reason,
            changed_at=switch.changed_at,
            changed_by=switch.changed_by,
        )
        for switch in repository.active_campaign_switches(uow)
    ]
    return KillSwitchStatus(tenant=tenant, campaigns=campaigns)
