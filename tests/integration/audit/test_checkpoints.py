"""Checkpoints, bundles in Blob (Azurite), and `asep audit verify --bundle`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text

from asep_cli.main import main as asep
from shared.audit.bundle import EVENTS_FILE, MANIFEST_FILE, scope_prefix
from shared.audit.checkpoints import checkpoint_chain, run_checkpoints, tenant_chain
from shared.audit.repository import ChainStore
from shared.audit.schemas import CheckpointOutcome
from shared.audit.signing import LocalKeySigner, public_key_pem
from shared.audit.verify import verify_bundle_path, verify_tenant
from shared.config import get_settings
from shared.db.server import database_urls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity.schemas import TenantRead
from shared.storage.blob import AzureBlobStore, BlobExists, BlobStore, InMemoryBlobStore
from tests.integration.audit.conftest import append_events

Keys = dict[str, ec.EllipticCurvePublicKey]


def download(store: BlobStore, prefix: str, into: Path) -> Path:
    for name in store.list(prefix):
        path = into / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(name))
    return into / prefix


def _outcome(outcomes: list[CheckpointOutcome], tenant: TenantRead) -> list[str]:
    return [o.status for o in outcomes if o.scope == f"tenant:{tenant.id}"]


def test_checkpoints_sign_new_events_and_link_up(
    tenant: TenantRead, signer: LocalKeySigner, keys: Keys, tmp_path: Path
) -> None:
    store = InMemoryBlobStore()
    append_events(tenant, 40)
    first = run_checkpoints(signer=signer, store=store)
    assert _outcome(first.outcomes, tenant) == ["created"]
    again = run_checkpoints(signer=signer, store=store)
    assert _outcome(again.outcomes, tenant) == ["unchanged"]
    append_events(tenant, 25, start=40)
    assert checkpoint_chain(tenant_chain(tenant.id), signer).status == "created"
    run_checkpoints(signer=signer, store=store)

    with tenant_unit_of_work(tenant.id) as uow:
        checkpoints = ChainStore.for_tenant(uow).checkpoints_list()
    assert [(c.number, c.first_seq) for c in checkpoints] == [
        (1, 1),
        (2, checkpoints[0].tree_size + 1),
    ]
    assert all(c.exported_at is not None for c in checkpoints)
    assert checkpoints[1].statement["previous"]["root"] == checkpoints[0].root
    report = verify_tenant(tenant.id, keys)
    assert report.ok, report.problems
    assert report.checkpoints_checked == 2

    bundles = download(store, scope_prefix(f"tenant:{tenant.id}"), tmp_path)
    both = verify_bundle_path(bundles, keys)
    assert both.ok, both.problems
    assert both.events_checked == checkpoints[1].tree_size
    # The second bundle alone still proves its root from the first one's frontier.
    alone = verify_bundle_path(bundles / f"{2:010d}", keys)
    assert alone.ok, alone.problems


def test_a_broken_chain_is_never_signed(tenant: TenantRead, signer: LocalKeySigner) -> None:
    append_events(tenant, 10)
    engine = create_engine(database_urls().owner)
    with engine.begin() as connection:
        connection.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.id)}
        )
        connection.execute(text("SET LOCAL asep.audit_break_glass = 'checkpoint refusal test'"))
        connection.execute(text("UPDATE audit_events SET event_json = '{}' WHERE seq = 4"))
    engine.dispose()
    outcome = checkpoint_chain(tenant_chain(tenant.id), signer)
    assert outcome.status == "refused"
    assert outcome.detail is not None
    assert outcome.detail.startswith("seq 4:")


class FlakyStore(InMemoryBlobStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next = True

    def put(self, name: str, data: bytes, *, content_type: str) -> None:
        super().put(name, data, content_type=content_type)
        if self.fail_next and name.endswith(EVENTS_FILE):
            self.fail_next = False
            raise OSError("connection reset while uploading")


def test_a_failed_export_is_retried_on_the_next_run(
    tenant: TenantRead, signer: LocalKeySigner, keys: Keys
) -> None:
    store = FlakyStore()
    append_events(tenant, 5)
    run_checkpoints(signer=signer, store=store)
    with tenant_unit_of_work(tenant.id) as uow:
        pending = ChainStore.for_tenant(uow).unexported_checkpoints(10)
    run_checkpoints(signer=signer, store=store)
    with tenant_unit_of_work(tenant.id) as uow:
        after = ChainStore.for_tenant(uow).unexported_checkpoints(10)
    assert pending
    assert after == []


@pytest.fixture
def pinned_key(
    signer: LocalKeySigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    pem = tmp_path / "trusted.pem"
    pem.write_bytes(
        public_key_pem(LocalKeySigner.generate().public_key()) + public_key_pem(signer.public_key())
    )
    monkeypatch.setenv("ASEP_AUDIT_TRUSTED_KEYS_PATH", str(pem))
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("ASEP_AUDIT_TRUSTED_KEYS_PATH")
    get_settings.cache_clear()


def test_bundles_round_trip_through_azurite_and_the_cli_verifies_them(
    azurite: str,
    tenant: TenantRead,
    signer: LocalKeySigner,
    tmp_path: Path,
    pinned_key: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = BlobServiceClient.from_connection_string(azurite)
    store = AzureBlobStore(service.get_container_client("audit-test"))
    append_events(tenant, 30)
    run_checkpoints(signer=signer, store=store)
    append_events(tenant, 12, start=30)
    run_checkpoints(signer=signer, store=store)
    prefix = scope_prefix(f"tenant:{tenant.id}")
    names = store.list(prefix)
    assert names == [f"{prefix}/{n:010d}/{f}" for n in (1, 2) for f in (EVENTS_FILE, MANIFEST_FILE)]
    with pytest.raises(BlobExists):
        store.put(names[0], b"overwrite", content_type="text/plain")

    bundles = download(store, prefix, tmp_path)
    assert asep(["audit", "verify", "--bundle", str(bundles)]) == 0
    assert asep(["audit", "verify", "--tenant", tenant.slug]) == 0
    capsys.readouterr()

    events = bundles / f"{2:010d}" / EVENTS_FILE
    lines = events.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[3])
    record["event_json"]["forged"] = True
    lines[3] = json.dumps(record).encode() + b"\n"
    events.write_bytes(b"".join(lines))
    assert asep(["audit", "verify", "--bundle", str(bundles)]) == 1
    output = json.loads(capsys.readouterr().out)
    assert output[0]["first_bad_seq"] == record["seq"]
