"""Audit chain throughput and verify time, each beside a plain INSERT of the same rows in the
same mode, in one run. Prints JSON.

    .venv/bin/python bench/audit_append.py [--writers 8] [--seconds 10] [--batch 1000]
                                           [--verify-events 1000000]

(a) one event per business transaction, concurrent writers on one tenant: each transaction
    is a tenant unit of work that inserts a prospect (the business change) and appends its
    audit event (head lock, hash, insert, head update); the baseline inserts the same
    prospect and a precomputed event row into an identical table with no chain.
(b) batched appends: `AuditChain.append_many` of --batch events per transaction vs a
    multi-row INSERT of the same precomputed rows.
(c) `verify_tenant` over --verify-events events with every core (multiprocessing).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

BENCH_DATABASE = "asep_bench_audit"
os.environ["ASEP_DATABASE_NAME"] = BENCH_DATABASE

from shared.audit.model import seal  # noqa: E402
from shared.audit.repository import _write_sql  # noqa: E402
from shared.audit.schemas import Actor, ActorType, AuditEventIn, AuditEventType  # noqa: E402
from shared.audit.service import AuditChain  # noqa: E402
from shared.audit.signing import LocalKeySigner  # noqa: E402
from shared.audit.verify import verify_tenant  # noqa: E402
from shared.config import get_settings  # noqa: E402
from shared.db.engine import reset_engines  # noqa: E402
from shared.db.migrate import upgrade_to_head  # noqa: E402
from shared.db.rls import tenant_isolation  # noqa: E402
from shared.db.server import (  # noqa: E402
    create_database,
    database_urls,
    drop_database,
    ensure_roles_and_database,
)
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work  # noqa: E402
from shared.identity.schemas import TenantCreate  # noqa: E402
from shared.identity.service import provision_tenant  # noqa: E402

ACTOR = Actor(type=ActorType.USER, id="bench-user", display="Bench")
PLAIN = "bench_plain_events"


def _payload(i: int) -> dict[str, Any]:
    return {"prospect_id": str(uuid.UUID(int=i)), "campaign": "c-1", "step": i % 5, "ok": True}


def _plain_row(tenant_id: uuid.UUID, seq: int) -> dict[str, Any]:
    """The row the chain would store for event `seq`, computed before the clock starts."""
    from datetime import UTC, datetime

    record = seal(
        tenant_id=str(tenant_id), seq=seq, actor=ACTOR.to_json(),
        event_type=AuditEventType.PROSPECT_SELECTED.value, event_json=_payload(seq),
        correlation_id=f"corr-{seq}", idempotency_key=f"idem-{seq}", prev_hash="0" * 64,
        created_at=datetime.now(UTC),
    )  # fmt: skip
    return {
        "tenant_id": tenant_id, "seq": seq, "actor": json.dumps(record.actor),
        "event_type": record.event_type, "event_json": json.dumps(record.event_json),
        "correlation_id": record.correlation_id, "idempotency_key": record.idempotency_key,
        "payload_hash": record.payload_hash, "prev_hash": record.prev_hash, "hash": record.hash,
        "created_at": datetime.now(UTC),
    }  # fmt: skip


def _prospect(uow: TenantUnitOfWork, i: int) -> None:
    uow.execute(
        text(
            "INSERT INTO prospects (id, tenant_id, email, source, status, enrichment) "
            "VALUES (:id, :t, :email, 'bench', 'new', '{}')"
        ),
        {"id": uuid.uuid4(), "t": uow.tenant_id, "email": f"p{i}-{uuid.uuid4().hex[:8]}@x.test"},
    )


_runs = iter(range(1, 1000))


def _concurrent(writers: int, seconds: float, one: Callable[[int], None]) -> dict[str, float]:
    """`writers` processes (as Functions instances would be) each running `one` until time."""
    offset = next(_runs) * 100_000_000
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    reset_engines()  # children open their own connections

    def run(w: int, start_at: float) -> None:
        done = 0
        try:
            while time.time() < start_at:
                time.sleep(0.001)
            stop = start_at + seconds
            while time.time() < stop:
                one(offset + w * 10_000_000 + done)
                done += 1
        finally:
            results.put(done)

    start_at = time.time() + 0.5
    processes = [context.Process(target=run, args=(w, start_at)) for w in range(writers)]
    for process in processes:
        process.start()
    total = sum(results.get() for _ in processes)
    for process in processes:
        process.join()
    return {"events": total, "seconds": seconds, "events_per_s": round(total / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    args = parser.parse_args()

    get_settings.cache_clear()
    settings = get_settings()
    urls = database_urls(settings)
    if urls.admin is None:
        sys.exit("the benchmark creates its own database on the embedded server")
    ensure_roles_and_database(urls.for_database("asep"), settings)
    drop_database(urls.admin, BENCH_DATABASE)
    create_database(urls.admin, BENCH_DATABASE, owner=settings.owner_role, app=settings.app_role)
    upgrade_to_head(urls.owner)
    # Point everything (forked writers, verify workers) at the running server directly.
    os.environ["DATABASE_URL"] = urls.owner.render_as_string(hide_password=False)
    os.environ["ASEP_APP_DATABASE_URL"] = urls.app.render_as_string(hide_password=False)
    get_settings.cache_clear()
    from sqlalchemy import create_engine

    owner = create_engine(urls.owner)
    with owner.begin() as conn:
        conn.execute(text(f"CREATE TABLE {PLAIN} (LIKE audit_events INCLUDING ALL)"))
        for statement in tenant_isolation(PLAIN, settings.app_role, privileges="SELECT, INSERT"):
            conn.execute(text(statement))
    owner.dispose()
    reset_engines()
    # The same statement text the chain uses, aimed at the plain table.
    plain = _write_sql(PLAIN, "audit_heads", tenant=True).insert
    result: dict[str, Any] = {"machine_cores": os.cpu_count()}

    # (a) one event per business transaction, concurrent writers, one tenant per mode.
    chain_tenant = provision_tenant(
        TenantCreate(slug=f"bench-chain-{uuid.uuid4().hex[:6]}", name="b")
    )
    plain_tenant = provision_tenant(
        TenantCreate(slug=f"bench-plain-{uuid.uuid4().hex[:6]}", name="b")
    )

    plain_template = _plain_row(plain_tenant.id, 1)

    def chain_tx(i: int) -> None:
        with tenant_unit_of_work(chain_tenant.id) as uow:
            _prospect(uow, i)
            AuditChain.append(
                uow, AuditEventType.PROSPECT_SELECTED, ACTOR, _payload(i), f"corr-{i}", f"idem-{i}"
            )

    def plain_tx(i: int) -> None:
        row = {**plain_template, "seq": i + 1, "event_json": json.dumps(_payload(i))}
        with tenant_unit_of_work(plain_tenant.id) as uow:
            _prospect(uow, i)
            uow.execute(plain, row)

    for one in (chain_tx, plain_tx):  # warm both pools
        _concurrent(args.writers, 1.0, one)
    chain_a = _concurrent(args.writers, args.seconds, chain_tx)
    plain_tenant_rows = _concurrent(args.writers, args.seconds, plain_tx)
    result["per_transaction"] = {
        "writers": args.writers,
        "chain": chain_a,
        "plain_insert": plain_tenant_rows,
        "ratio": round(chain_a["events_per_s"] / plain_tenant_rows["events_per_s"], 3),
        "goal": ">= 1000 events/s per tenant, ratio >= 0.5",
    }

    # (b) batched appends vs multi-row INSERT of the same rows.
    batch_tenant = provision_tenant(
        TenantCreate(slug=f"bench-batch-{uuid.uuid4().hex[:6]}", name="b")
    )
    events = [
        AuditEventIn(event_type=AuditEventType.SEND_SUCCEEDED, actor=ACTOR, payload=_payload(i),
                     correlation_id=f"corr-{i}", idempotency_key=f"idem-{i}")
        for i in range(args.batch)
    ]  # fmt: skip
    started = time.perf_counter()
    for _ in range(args.batches):
        with tenant_unit_of_work(batch_tenant.id) as uow:
            AuditChain.append_many(uow, events)
    chain_b = time.perf_counter() - started
    base = 10_000_000
    batches = [
        [_plain_row(batch_tenant.id, base + b * args.batch + i) for i in range(args.batch)]
        for b in range(args.batches)
    ]
    started = time.perf_counter()
    for rows in batches:
        with tenant_unit_of_work(batch_tenant.id) as uow:
            uow.session.execute(plain, rows)
    plain_b = time.perf_counter() - started
    total = args.batch * args.batches
    result["batched"] = {
        "batch": args.batch,
        "events": total,
        "chain_events_per_s": round(total / chain_b, 1),
        "plain_insert_events_per_s": round(total / plain_b, 1),
        "ratio": round(plain_b / chain_b, 3),
        "goal": ">= 10000 events/s, ratio >= 0.5",
    }

    # (c) verify a chain of --verify-events events with every core.
    verify_tenant_row = provision_tenant(
        TenantCreate(slug=f"bench-verify-{uuid.uuid4().hex[:6]}", name="b")
    )
    big = [
        AuditEventIn(event_type=AuditEventType.POLICY_EVALUATED, actor=ACTOR, payload=_payload(i),
                     correlation_id=f"corr-{i // 100}", idempotency_key=f"idem-{i}")
        for i in range(5_000)
    ]  # fmt: skip
    started = time.perf_counter()
    remaining = args.verify_events - 1  # provisioning appended TENANT_CREATED
    while remaining > 0:
        with tenant_unit_of_work(verify_tenant_row.id) as uow:
            AuditChain.append_many(uow, big[: min(remaining, len(big))])
        remaining -= len(big)
    fill = time.perf_counter() - started
    signer = LocalKeySigner.generate()
    report = verify_tenant(verify_tenant_row.id, {signer.key_id: signer.public_key()})
    result["verify"] = {
        "events": report.events_checked,
        "ok": report.ok,
        "seconds": report.seconds,
        "events_per_s": round(report.events_checked / report.seconds, 1),
        "workers": get_settings().audit_verify_workers or os.cpu_count(),
        "fill_seconds_append_many_5000": round(fill, 1),
        "goal": "<= 30 s for 1M events",
    }
    print(json.dumps(result, indent=2))
    reset_engines()
    drop_database(urls.admin, BENCH_DATABASE)


if __name__ == "__main__":
    main()
