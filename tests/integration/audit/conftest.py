"""Fixtures for the audit tests: a signer and its pinned key, chains with events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.audit.schemas import Actor, ActorType, AuditEventIn, AuditEventType
from shared.audit.service import AuditChain
from shared.audit.signing import LocalKeySigner
from shared.db.server import DatabaseUrls, libpq_dsn
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity.schemas import TenantRead

ALICE = Actor(type=ActorType.USER, id="user-alice", display="Alice")
ROBOT = Actor(type=ActorType.API_KEY, id="key-robot")
TYPES = list(AuditEventType)


@pytest.fixture(scope="session")
def signer() -> LocalKeySigner:
    return LocalKeySigner.generate()


@pytest.fixture(scope="session")
def keys(signer: LocalKeySigner) -> dict[str, ec.EllipticCurvePublicKey]:
    return {signer.key_id: signer.public_key()}


def sample_event(i: int) -> AuditEventIn:
    return AuditEventIn(
        event_type=TYPES[i % len(TYPES)],
        actor=ALICE if i % 3 else ROBOT,
        payload={
            "i": i,
            "prospect": f"p-{i}",
            "score": i / 7,
            "tags": ["a", "ü"],
            "ok": i % 2 == 0,
        },
        correlation_id=f"corr-{i // 10}",
        idempotency_key=f"idem-{i}",
    )


def append_events(tenant: TenantRead, count: int, *, start: int = 0, per_tx: int = 50) -> None:
    for offset in range(start, start + count, per_tx):
        with tenant_unit_of_work(tenant.id) as uow:
            AuditChain.append_many(
                uow, [sample_event(i) for i in range(offset, min(offset + per_tx, start + count))]
            )


@pytest.fixture
def owner_conn(database: DatabaseUrls) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq_dsn(database.owner)) as conn:
        yield conn
