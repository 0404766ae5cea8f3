"""Tamper suite: random edits, deletions, reorders and inserts made in the database as the
owner (through the logged break-glass path) are all detected, at the right first bad seq;
forged and re-signed checkpoints are rejected."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from shared.audit.checkpoints import checkpoint_chain, tenant_chain
from shared.audit.model import ChainRecord, canonical_json, payload_hash
from shared.audit.repository import ChainStore
from shared.audit.signing import LocalKeySigner, b64url
from shared.audit.verify import verify_records, verify_tenant
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import TenantUnitOfWork
from shared.identity.schemas import TenantRead
from tests.conftest import make_tenant
from tests.integration.audit.conftest import append_events

Keys = dict[str, ec.EllipticCurvePublicKey]
TRIALS = 1_000
FIELDS = ("seq", "actor", "event_type", "event_json", "correlation_id", "idempotency_key",
          "payload_hash", "prev_hash", "hash", "created_at")  # fmt: skip


@pytest.fixture(scope="module")
def owner_engine(database: DatabaseUrls) -> Iterator[Engine]:
    engine = create_engine(database.owner)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def chain(database: DatabaseUrls, signer: LocalKeySigner) -> TenantRead:
    """A tenant with ~200 events, the first ~120 covered by two signed checkpoints."""
    tenant = make_tenant("tamper")
    append_events(tenant, 60)
    assert checkpoint_chain(tenant_chain(tenant.id), signer).status == "created"
    append_events(tenant, 60, start=60)
    assert checkpoint_chain(tenant_chain(tenant.id), signer).status == "created"
    append_events(tenant, 80, start=120)
    return tenant


class Tampering:
    """One owner transaction with break-glass on; always rolled back."""

    def __init__(self, engine: Engine, tenant: TenantRead) -> None:
        self.connection = engine.connect()
        self.session = Session(bind=self.connection)
        self.session.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.id)}
        )
        self.session.execute(text("SET LOCAL asep.audit_break_glass = 'tamper suite'"))
        self.uow = TenantUnitOfWork(self.session, tenant.id)
        self.store = ChainStore.for_tenant(self.uow)

    def sql(self, statement: str, **params: Any) -> None:
        self.session.execute(text(statement), params)

    def close(self) -> None:
        self.session.rollback()
        self.session.close()
        self.connection.close()

    def verify(self, keys: Keys) -> Any:
        return verify_records(
            self.store.scope,
            self.store.records(),
            checkpoints=self.store.checkpoints_list(),
            keys=keys,
            head_before=self.store.read_head(),
            head_after=self.store.read_head,
        )


def _row(record: ChainRecord) -> tuple[Any, ...]:
    return tuple(json.dumps(getattr(record, f), sort_keys=True, default=str) for f in FIELDS)


def _first_difference(original: list[ChainRecord], tampered: list[ChainRecord]) -> int:
    before = {r.seq: _row(r) for r in original}
    after = {r.seq: _row(r) for r in tampered}
    return min(seq for seq in before.keys() | after.keys() if before.get(seq) != after.get(seq))


def _sealed_like(record: ChainRecord, **changes: Any) -> dict[str, Any]:
    """A record changed by someone who knows the format and recomputes both hashes."""
    fields = {**record.hashed_fields(), **changes}
    fields["payload_hash"] = payload_hash(fields["event_json"])
    fields["hash"] = ChainRecord.from_json({**fields, "hash": ""}).compute_hash()
    return fields


def _insert(t: Tampering, fields: dict[str, Any]) -> None:
    t.sql(
        "INSERT INTO audit_events (tenant_id, seq, actor, event_type, event_json, correlation_id, "
        "idempotency_key, payload_hash, prev_hash, hash, created_at) VALUES (:tenant, :seq, "
        "CAST(:actor AS jsonb), :event_type, CAST(:event_json AS jsonb), :correlation_id, "
        ":idempotency_key, :payload_hash, :prev_hash, :hash, CAST(:created_at AS timestamptz))",
        tenant=fields["tenant_id"],
        seq=fields["seq"],
        actor=json.dumps(fields["actor"]),
        event_type=fields["event_type"],
        event_json=json.dumps(fields["event_json"]),
        correlation_id=fields["correlation_id"],
        idempotency_key=fields["idempotency_key"],
        payload_hash=fields["payload_hash"],
        prev_hash=fields["prev_hash"],
        hash=fields["hash"],
        created_at=fields["created_at"],
    )


def _tamper(t: Tampering, rng: random.Random, records: list[ChainRecord]) -> str:
    n = len(records)
    k = rng.randint(1, n)
    record = records[k - 1]
    operation = rng.choice(
        ["edit", "edit", "smart_edit", "delete", "truncate_tail", "reorder", "insert", "append"]
    )
    if operation == "edit":
        column, value = rng.choice(
            [
                (
                    "event_type",
                    "'KILL_SWITCH_ACTIVATED'"
                    if record.event_type != "KILL_SWITCH_ACTIVATED"
                    else "'DEAL_CREATED'",
                ),
                ("event_json", "event_json || '{\"injected\": true}'::jsonb"),
                ("actor", "jsonb_set(actor, '{id}', '\"mallory\"')"),
                ("correlation_id", "'forged-correlation'"),
                ("created_at", "created_at - interval '1 microsecond'"),
                ("prev_hash", "repeat('a', 64)"),
                ("hash", "repeat('b', 64)"),
                ("payload_hash", "repeat('c', 64)"),
            ]
        )
        t.sql(f"UPDATE audit_events SET {column} = {value} WHERE seq = :k", k=k)
    elif operation == "smart_edit":
        event_json = {**record.event_json, "amount": rng.randint(1, 10**6)}
        fields = _sealed_like(record, event_json=event_json)
        t.sql(
            "UPDATE audit_events SET event_json = CAST(:j AS jsonb), payload_hash = :p, hash = :h "
            "WHERE seq = :k",
            j=json.dumps(event_json),
            p=fields["payload_hash"],
            h=fields["hash"],
            k=k,
        )
    elif operation == "delete":
        t.sql("DELETE FROM audit_events WHERE seq = :k", k=k)
    elif operation == "truncate_tail":
        t.sql("DELETE FROM audit_events WHERE seq >= :k", k=k)
    elif operation == "reorder":
        j = rng.choice([x for x in range(1, n + 1) if x != k])
        t.sql("UPDATE audit_events SET seq = -1 WHERE seq = :a", a=k)
        t.sql("UPDATE audit_events SET seq = :a WHERE seq = :b", a=k, b=j)
        t.sql("UPDATE audit_events SET seq = :b WHERE seq = -1", b=j)
    elif operation == "insert":
        t.sql("UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= :k", k=k)
        t.sql("UPDATE audit_events SET seq = -seq WHERE seq < 0")
        forged = {**record.hashed_fields(), "event_type": "APPROVAL_GRANTED", "hash": record.hash}
        _insert(t, forged)
    else:  # append an event with a valid hash and link, without moving the head
        last = records[-1]
        forged = _sealed_like(last, seq=n + 1, prev_hash=last.hash, event_type="DEAL_CREATED")
        _insert(t, forged)
    return operation


def test_random_tampering_is_always_detected_at_the_first_bad_seq(
    chain: TenantRead, owner_engine: Engine, keys: Keys
) -> None:
    pristine = Tampering(owner_engine, chain)
    try:
        original = list(pristine.store.records())
        assert pristine.verify(keys).ok
    finally:
        pristine.close()
    rng = random.Random(20261127)
    missed: list[str] = []
    operations: dict[str, int] = {}
    for trial in range(TRIALS):
        t = Tampering(owner_engine, chain)
        try:
            operation = _tamper(t, rng, original)
            operations[operation] = operations.get(operation, 0) + 1
            expected = _first_difference(original, list(t.store.records()))
            report = t.verify(keys)
        finally:
            t.close()
        if report.ok or report.first_bad_seq != expected:
            missed.append(
                f"trial {trial} {operation}: expected {expected}, got {report.first_bad_seq} "
                f"{[p.detail for p in report.problems]}"
            )
    assert missed == []
    assert len(operations) == 7


def test_rewriting_a_suffix_consistently_is_caught_by_the_signed_checkpoint(
    chain: TenantRead, owner_engine: Engine, keys: Keys
) -> None:
    t = Tampering(owner_engine, chain)
    try:
        records = list(t.store.records())
        k = 90  # inside checkpoint 2 (61..121)
        prev_hash = records[k - 2].hash
        for record in records[k - 1 :]:
            changes: dict[str, Any] = {"prev_hash": prev_hash}
            if record.seq == k:
                changes["event_json"] = {**record.event_json, "rewritten": True}
            fields = _sealed_like(record, **changes)
            t.sql(
                "UPDATE audit_events SET event_json = CAST(:j AS jsonb), payload_hash = :p, "
                "prev_hash = :ph, hash = :h WHERE seq = :s",
                j=json.dumps(fields["event_json"]),
                p=fields["payload_hash"],
                ph=fields["prev_hash"],
                h=fields["hash"],
                s=record.seq,
            )
            prev_hash = fields["hash"]
        t.sql("UPDATE audit_heads SET hash = :h", h=prev_hash)
        report = t.verify(keys)
    finally:
        t.close()
    assert not report.ok
    assert [p.kind for p in report.problems] == ["checkpoint_root_mismatch"]
    assert report.first_bad_seq == 62  # the range of checkpoint 2 (seq 1 is TENANT_CREATED)


def _resign(t: Tampering, number: int, signer: LocalKeySigner, statement: dict[str, Any]) -> None:
    t.sql(
        "UPDATE audit_checkpoints SET statement = CAST(:s AS jsonb), key_id = :k, signature = :sig "
        "WHERE number = :n",
        s=json.dumps(statement),
        k=signer.key_id,
        sig=b64url(signer.sign(canonical_json(statement))),
        n=number,
    )


def test_a_checkpoint_re_signed_with_another_key_is_rejected(
    chain: TenantRead, owner_engine: Engine, keys: Keys
) -> None:
    mallory = LocalKeySigner.generate()
    t = Tampering(owner_engine, chain)
    try:
        checkpoint = t.store.checkpoints_list()[1]
        _resign(t, 2, mallory, {**checkpoint.statement, "key_id": mallory.key_id})
        report = t.verify(keys)
    finally:
        t.close()
    assert not report.ok
    assert report.problems[0].kind == "checkpoint_signature_invalid"
    assert "not pinned" in report.problems[0].detail


def test_a_forged_checkpoint_claiming_the_pinned_key_is_rejected(
    chain: TenantRead, owner_engine: Engine, keys: Keys, signer: LocalKeySigner
) -> None:
    mallory = LocalKeySigner.generate()
    t = Tampering(owner_engine, chain)
    try:
        checkpoint = t.store.checkpoints_list()[0]
        forged = {**checkpoint.statement, "tree_size": checkpoint.tree_size}
        t.sql(
            "UPDATE audit_checkpoints SET signature = :sig WHERE number = 1",
            sig=b64url(mallory.sign(canonical_json(forged))),
        )
        report = t.verify(keys)
    finally:
        t.close()
    assert not report.ok
    assert report.problems[0].kind == "checkpoint_signature_invalid"
    assert report.problems[0].detail.endswith("signature does not verify")


def test_tampering_is_found_by_the_parallel_verifier_too(
    chain: TenantRead, owner_engine: Engine, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.audit.verify as verify_module

    monkeypatch.setattr(verify_module, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(verify_module, "CHUNK_EVENTS", 37)
    assert verify_tenant(chain.id, keys, workers=2).ok
    with owner_engine.begin() as connection:
        connection.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(chain.id)}
        )
        connection.execute(text("SET LOCAL asep.audit_break_glass = 'parallel tamper test'"))
        connection.execute(text("UPDATE audit_events SET event_type = 'X' WHERE seq = 150"))
        connection.execute(text("DELETE FROM audit_events WHERE seq = 170"))
    report = verify_tenant(chain.id, keys, workers=2)
    assert not report.ok
    assert report.first_bad_seq == 150
