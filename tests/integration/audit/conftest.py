"""Fixtures for the audit tests: a signer and its pinned key, chains with events."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.audit.schemas import Actor, ActorType, AuditEventIn, AuditEventType
from shared.audit.service import AuditChain
from shared.audit.signing import LocalKeySigner, signer_from_settings
from shared.config import REPO_ROOT
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
    # The deployment's own signer is trusted too: the app on devhost (end-to-end tests in
    # the same database) checkpoints the shared platform chain with it on its timer.
    deployment = signer_from_settings()
    return {signer.key_id: signer.public_key(), deployment.key_id: deployment.public_key()}


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


AZURITE = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's Blob service on a free port; yields its connection string. Stopped after."""
    if not AZURITE.exists():
        pytest.fail("Azurite is missing: run `npm ci` (make test does)")
    port = _free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    # --skipApiVersionCheck: azure-storage-blob 12.31 speaks a newer API version than
    # Azurite 3.37 accepts (../shared/notes/test-peers.md §6).
    process = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", str(workspace), "--skipApiVersionCheck", "--loose", "--silent",
         "--disableTelemetry"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"Azurite exited: {stderr}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("Azurite did not start within 30 s")
                time.sleep(0.1)
        yield (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
