"""Appending to the chain: linkage, atomicity with the business change, append-only grants."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from shared.audit.checkpoints import checkpoint_chain, platform_chain
from shared.audit.model import GENESIS_HASH
from shared.audit.repository import ChainStore
from shared.audit.schemas import AuditEventType
from shared.audit.service import AuditChain, PlatformAuditChain
from shared.audit.signing import LocalKeySigner
from shared.audit.verify import verify_platform, verify_tenant
from shared.db.unit_of_work import directory_unit_of_work, tenant_unit_of_work
from shared.identity.schemas import TenantRead
from tests.conftest import make_tenant
from tests.integration.audit.conftest import ALICE, append_events

Keys = dict[str, ec.EllipticCurvePublicKey]


def head_seq(tenant: TenantRead) -> int:
    with tenant_unit_of_work(tenant.id) as uow:
        head = ChainStore.for_tenant(uow).read_head()
    return head.seq if head is not None else 0


def test_appends_form_a_gapless_linked_chain(tenant: TenantRead, keys: Keys) -> None:
    base = head_seq(tenant)  # provisioning already recorded TENANT_CREATED
    with tenant_unit_of_work(tenant.id) as uow:
        first = AuditChain.append(
            uow, AuditEventType.PROSPECT_SELECTED, ALICE, {"prospect": "p1"}, "corr", "idem"
        )
        second = AuditChain.append(uow, AuditEventType.DRAFT_CREATED, ALICE, {"draft": "d1"})
    append_events(tenant, 30, per_tx=7)
    with tenant_unit_of_work(tenant.id) as uow:
        records = list(ChainStore.for_tenant(uow).records())
    assert [r.seq for r in records] == list(range(1, base + 33))
    assert records[0].prev_hash == GENESIS_HASH
    assert (first.seq, first.prev_hash) == (
        base + 1,
        records[base - 1].hash if base else GENESIS_HASH,
    )
    assert (second.seq, second.prev_hash) == (base + 2, first.hash)
    assert records[base].hash == first.hash
    assert {r.tenant_id for r in records} == {str(tenant.id)}
    report = verify_tenant(tenant.id, keys)
    assert report.ok, report.problems
    assert report.events_checked == base + 32


def test_event_rolls_back_with_the_business_change(tenant: TenantRead, keys: Keys) -> None:
    append_events(tenant, 3)
    base = head_seq(tenant)

    def rename_then_fail() -> None:
        with tenant_unit_of_work(tenant.id) as uow:
            uow.execute(text("UPDATE tenants SET name = 'renamed' WHERE id = :t"), {"t": tenant.id})
            AuditChain.append(uow, AuditEventType.TENANT_UPDATED, ALICE, {"name": "renamed"})
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        rename_then_fail()
    with tenant_unit_of_work(tenant.id) as uow:
        name = uow.execute(text("SELECT name FROM tenants")).scalar_one()
    assert head_seq(tenant) == base
    assert name != "renamed"
    assert verify_tenant(tenant.id, keys).ok


def test_concurrent_writers_to_one_tenant_stay_gapless(tenant: TenantRead, keys: Keys) -> None:
    threads, per_thread = 8, 15
    base = head_seq(tenant)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(per_thread):
                with tenant_unit_of_work(tenant.id) as uow:
                    AuditChain.append(uow, AuditEventType.SEND_ATTEMPTED, ALICE, {"w": n, "i": i})
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    report = verify_tenant(tenant.id, keys)
    assert report.ok, report.problems
    assert report.events_checked == base + threads * per_thread
    with tenant_unit_of_work(tenant.id) as uow:
        times = [r.created_at for r in ChainStore.for_tenant(uow).records()]
    assert times == sorted(times)


def test_app_role_can_neither_update_nor_delete_events(tenant: TenantRead) -> None:
    append_events(tenant, 2)
    for statement in (
        "UPDATE audit_events SET event_type = 'X'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "UPDATE audit_checkpoints SET root = 'x'",
    ):
        with tenant_unit_of_work(tenant.id) as uow:
            uow.execute(text("SELECT set_config('asep.audit_break_glass', 'try', true)"))
            with pytest.raises(ProgrammingError, match="permission denied"):
                uow.execute(text(statement))
            uow.session.rollback()


def test_the_owner_needs_break_glass_and_leaves_a_trace(
    tenant: TenantRead, owner_conn: psycopg.Connection[Any]
) -> None:
    append_events(tenant, 2)
    for statement in ("UPDATE audit_events SET event_type = 'X'", "DELETE FROM audit_events"):
        owner_conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant.id),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner_conn.execute(statement)
        owner_conn.rollback()
    owner_conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant.id),))
    owner_conn.execute("SET LOCAL asep.audit_break_glass = 'incident 42: redact'")
    changed = owner_conn.execute("UPDATE audit_events SET event_type = 'X' WHERE seq = 1").rowcount
    trace = owner_conn.execute(
        "SELECT operation, reason, old_row->>'event_type', new_row->>'event_type' "
        "FROM audit_break_glass_log WHERE old_row->>'tenant_id' = %s",
        (str(tenant.id),),
    ).fetchall()
    owner_conn.rollback()
    assert changed == 1
    assert len(trace) == 1
    assert trace[0][:2] == ("UPDATE", "incident 42: redact")
    assert trace[0][3] == "X"
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner_conn.execute("TRUNCATE audit_break_glass_log")


def test_platform_chain_is_invisible_inside_a_tenant_and_checkpointed(
    tenant: TenantRead, keys: Keys, signer: LocalKeySigner
) -> None:
    with directory_unit_of_work() as duow:
        record = PlatformAuditChain.append(
            duow, AuditEventType.AUTH_REFUSED, ALICE, {"reason": "unknown issuer"}
        )
    assert record.tenant_id is None
    with tenant_unit_of_work(tenant.id) as uow:
        visible = uow.execute(text("SELECT count(*) FROM platform_audit_events")).scalar_one()
    assert visible == 0
    assert checkpoint_chain(platform_chain, signer).status == "created"
    report = verify_platform(keys)
    assert report.ok, report.problems
    assert report.checkpoints_checked >= 1


def test_tenants_chains_are_independent(keys: Keys) -> None:
    a, b = make_tenant("chain-a"), make_tenant("chain-b")
    append_events(a, 5)
    append_events(b, 3)
    assert verify_tenant(a.id, keys).events_checked == head_seq(a)
    assert verify_tenant(b.id, keys).events_checked == head_seq(b) == head_seq(a) - 2
