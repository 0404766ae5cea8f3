"""Queries over pack versions, the active pack, recorded decisions and kill switches."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert

from shared.audit.repository import Companion
from shared.campaigns.orm import Campaign
from shared.db.unit_of_work import TenantUnitOfWork
from shared.policy.orm import (
    ActivePolicyPack,
    CampaignKillSwitch,
    KillSwitch,
    PolicyDecisionRecord,
    PolicyPackVersion,
)

_VERSION_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class ActiveRef:
    """Which saved version is active: enough to hit the compiled-pack cache without loading
    the document."""

    version_id: uuid.UUID
    pack_id: str
    version: int


def lock_version_numbering(uow: TenantUnitOfWork) -> None:
    """Serialize saves of one tenant so version numbers are consecutive (xact-scoped lock)."""
    uow.execute(_VERSION_LOCK, {"key": f"asep.policy_pack_versions:{uow.tenant_id}"})


def next_version(uow: TenantUnitOfWork) -> int:
    current = uow.session.scalar(
        select(func.max(PolicyPackVersion.version)).where(
            PolicyPackVersion.tenant_id == uow.tenant_id
        )
    )
    return int(current or 0) + 1


def add_version(uow: TenantUnitOfWork, version: PolicyPackVersion) -> PolicyPackVersion:
    uow.add(version)
    uow.flush()
    return version


def get_version(uow: TenantUnitOfWork, version_id: uuid.UUID) -> PolicyPackVersion | None:
    return uow.get(PolicyPackVersion, version_id)


def list_versions(uow: TenantUnitOfWork) -> Sequence[PolicyPackVersion]:
    return uow.session.scalars(
        uow.scoped(PolicyPackVersion).order_by(PolicyPackVersion.version.desc())
    ).all()


def active_ref(uow: TenantUnitOfWork) -> ActiveRef | None:
    row = uow.execute(
        select(PolicyPackVersion.id, PolicyPackVersion.pack_id, PolicyPackVersion.version)
        .join(
            ActivePolicyPack,
            (ActivePolicyPack.tenant_id == PolicyPackVersion.tenant_id)
            & (ActivePolicyPack.pack_version_id == PolicyPackVersion.id),
        )
        .where(ActivePolicyPack.tenant_id == uow.tenant_id)
    ).one_or_none()
    if row is None:
        return None
    return ActiveRef(version_id=row[0], pack_id=row[1], version=row[2])


def set_active(uow: TenantUnitOfWork, version_id: uuid.UUID, actor: dict[str, Any]) -> None:
    statement = insert(ActivePolicyPack).values(
        tenant_id=uow.tenant_id, pack_version_id=version_id, activated_by=actor
    )
    uow.execute(
        statement.on_conflict_do_update(
            index_elements=[ActivePolicyPack.tenant_id],
            set_={
                "pack_version_id": statement.excluded.pack_version_id,
                "activated_by": statement.excluded.activated_by,
                "activated_at": func.now(),
            },
        )
    )


# The decision row, written by its POLICY_EVALUATED event's statement (`AuditChain.append_with`)
# and carrying that event's seq.
_DECISION_ROW = """
    INSERT INTO policy_decisions
        (id, tenant_id, pack_id, pack_version, pack_version_id, action_type, stage, input,
         input_hash, outcome, matched_rules, allowed, audit_seq)
    SELECT :decision_id, :tenant_id, :decision_pack_id, :decision_pack_version,
           :decision_pack_version_id, :decision_action_type, :decision_stage,
           CAST(:decision_input AS jsonb), :decision_input_hash,
           CAST(:decision_outcome AS jsonb), CAST(:decision_matched AS varchar[]),
           :decision_allowed, appended.seq
    FROM appended
"""


def decision_row(
    uow: TenantUnitOfWork,
    *,
    decision_id: uuid.UUID,
    pack_id: str,
    pack_version: int,
    pack_version_id: uuid.UUID | None,
    action_type: str,
    stage: str,
    policy_input_json: str,
    input_hash: str,
    outcome: dict[str, Any],
    matched_rules: list[str],
    allowed: bool,
) -> Companion:
    """The decision's `policy_decisions` row as a companion of its audit event."""
    return Companion(
        ctes=f"decision_row AS ({_DECISION_ROW})",
        params={
            "tenant_id": uow.tenant_id,
            "decision_id": decision_id,
            "decision_pack_id": pack_id,
            "decision_pack_version": pack_version,
            "decision_pack_version_id": pack_version_id,
            "decision_action_type": action_type,
            "decision_stage": stage,
            "decision_input": policy_input_json,
            "decision_input_hash": input_hash,
            "decision_outcome": json.dumps(outcome),
            "decision_matched": matched_rules,
            "decision_allowed": allowed,
        },
    )


def recent_decisions(uow: TenantUnitOfWork, limit: int) -> Sequence[PolicyDecisionRecord]:
    return uow.session.scalars(
        uow.scoped(PolicyDecisionRecord)
        .order_by(PolicyDecisionRecord.decided_at.desc(), PolicyDecisionRecord.id)
        .limit(limit)
    ).all()


# Kill switches. Raw row locks matter here, so these are explicit statements.


# The tenant's switch row FOR SHARE together with the active pack's reference: both are
# needed by every decision, so one round trip. Only the switch row is locked; the pack
# pointer is read as of the statement's snapshot, as a separate read would be. Callers that
# need more reads in the same round trip (the gate) extend this FROM clause and column list.
GUARD_COLUMNS = (
    "k.active AS switch_active, v.id AS pack_version_id, v.pack_id AS pack_id, "
    "v.version AS pack_version"
)
GUARD_FROM = """
    kill_switches k
    LEFT JOIN active_policy_packs a ON a.tenant_id = k.tenant_id
    LEFT JOIN policy_pack_versions v
           ON v.tenant_id = a.tenant_id AND v.id = a.pack_version_id
"""
GUARD_WHERE = "k.tenant_id = :tenant_id"
GUARD_LOCK = "FOR SHARE OF k"
_DECISION_GUARD = text(f"SELECT {GUARD_COLUMNS} FROM {GUARD_FROM} WHERE {GUARD_WHERE} {GUARD_LOCK}")

_CREATE_TENANT_SWITCH = text(
    "INSERT INTO kill_switches (tenant_id) VALUES (:tenant_id) ON CONFLICT (tenant_id) DO NOTHING"
)

_CAMPAIGN_SWITCH_ACTIVE = text(
    "SELECT active FROM campaign_kill_switches "
    "WHERE tenant_id = :tenant_id AND campaign_id = :campaign_id"
)


def lock_tenant_switch_and_active_pack(uow: TenantUnitOfWork) -> tuple[bool, ActiveRef | None]:
    """The tenant switch's state, holding a share lock on its row until the transaction ends,
    and the active pack's reference (None: the shipped default).

    The row is created on first use: a lock can only be taken on a row that exists, and an
    activation must find one to update (and wait on)."""
    params = {"tenant_id": uow.tenant_id}
    row = uow.execute(_DECISION_GUARD, params).one_or_none()
    if row is None:
        create_tenant_switch(uow)
        row = uow.execute(_DECISION_GUARD, params).one()
    return guard_from_row(row)


def create_tenant_switch(uow: TenantUnitOfWork) -> None:
    """The tenant's switch row, if it has none yet (a lock needs a row to lock)."""
    uow.execute(_CREATE_TENANT_SWITCH, {"tenant_id": uow.tenant_id})


def guard_from_row(row: Any) -> tuple[bool, ActiveRef | None]:
    """(switch active, active pack) from a row with `GUARD_COLUMNS`."""
    return guard_from_values(row.switch_active, row.pack_version_id, row.pack_id, row.pack_version)


def guard_from_values(
    switch_active: bool | None,
    pack_version_id: uuid.UUID | None,
    pack_id: str | None,
    pack_version: int | None,
) -> tuple[bool, ActiveRef | None]:
    """`guard_from_row` from the four `GUARD_COLUMNS` values, in order."""
    active = (
        ActiveRef(version_id=pack_version_id, pack_id=str(pack_id), version=int(pack_version or 0))
        if pack_version_id is not None
        else None
    )
    return bool(switch_active), active


def campaign_switch_active(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> bool:
    active = uow.execute(
        _CAMPAIGN_SWITCH_ACTIVE, {"tenant_id": uow.tenant_id, "campaign_id": campaign_id}
    ).scalar_one_or_none()
    return bool(active)


def write_tenant_switch(
    uow: TenantUnitOfWork,
    *,
    active: bool | None,
    reason: str | None,
    actor: dict[str, Any],
    changed_at: datetime,
) -> bool:
    """Update (creating if needed) the tenant row, which waits for every decision holding it
    FOR SHARE. `active=None` only bumps the generation (a campaign switch changing). Returns
    whether the tenant switch was active before."""
    previous = uow.session.scalar(
        select(KillSwitch.active).where(KillSwitch.tenant_id == uow.tenant_id).with_for_update()
    )
    values: dict[str, Any] = {"tenant_id": uow.tenant_id, "generation": 1}
    updates: dict[str, Any] = {"generation": KillSwitch.generation + 1}
    if active is not None:
        values |= {"active": active, "reason": reason, "changed_at": changed_at}
        values["changed_by"] = actor
        updates |= {
            "active": active,
            "reason": reason,
            "changed_at": changed_at,
            "changed_by": actor,
        }
    uow.execute(
        insert(KillSwitch)
        .values(**values)
        .on_conflict_do_update(index_elements=[KillSwitch.tenant_id], set_=updates)
    )
    return bool(previous)


def write_campaign_switch(
    uow: TenantUnitOfWork,
    campaign_id: uuid.UUID,
    *,
    active: bool,
    reason: str | None,
    actor: dict[str, Any],
    changed_at: datetime,
) -> bool:
    previous = campaign_switch_active(uow, campaign_id)
    values = {
        "active": active,
        "reason": reason,
        "changed_at": changed_at,
        "changed_by": actor,
    }
    uow.execute(
        insert(CampaignKillSwitch)
        .values(id=uuid.uuid4(), tenant_id=uow.tenant_id, campaign_id=campaign_id, **values)
        .on_conflict_do_update(
            index_elements=[CampaignKillSwitch.tenant_id, CampaignKillSwitch.campaign_id],
            set_=values,
        )
    )
    return previous


def campaign_exists(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> bool:
    return uow.get(Campaign, campaign_id) is not None


def tenant_switch(uow: TenantUnitOfWork) -> KillSwitch | None:
    # populate_existing: the switches are written with Core upserts the identity map misses.
    return uow.session.scalars(
        select(KillSwitch)
        .where(KillSwitch.tenant_id == uow.tenant_id)
        .execution_options(populate_existing=True)
    ).one_or_none()


def active_campaign_switches(uow: TenantUnitOfWork) -> Sequence[CampaignKillSwitch]:
    return uow.session.scalars(
        uow.scoped(CampaignKillSwitch)
        .where(CampaignKillSwitch.active.is_(True))
        .order_by(CampaignKillSwitch.changed_at)
        .execution_options(populate_existing=True)
    ).all()
