"""Bundles verify on their own and against the bundle before them; tampering is named."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.audit.bundle import EVENTS_FILE, MANIFEST_FILE, Bundle, build_bundle, parse_bundle
from shared.audit.model import (
    GENESIS_HASH,
    ChainRecord,
    MerkleFrontier,
    canonical_json,
    checkpoint_statement,
    previous_link,
    seal,
)
from shared.audit.signing import LocalKeySigner, b64url
from shared.audit.verify import verify_bundle, verify_bundle_path
from shared.storage.blob import BlobExists, BlobMissing, FilesystemBlobStore, InMemoryBlobStore

TENANT = "3a6f5a62-3c56-4c55-8f1b-3f3f1b5d8c10"
SIGNER = LocalKeySigner.generate()
KEYS = {SIGNER.key_id: SIGNER.public_key()}


def _records(n: int) -> list[ChainRecord]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    records, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        record = seal(
            tenant_id=TENANT, seq=seq, actor={"type": "system", "id": "job"},
            event_type="SEND_ATTEMPTED", event_json={"n": seq, "to": f"p{seq}@x.test"},
            correlation_id=f"c{seq}", idempotency_key=None, prev_hash=prev,
            created_at=start + timedelta(seconds=seq),
        )  # fmt: skip
        records.append(record)
        prev = record.hash
    return records


def _bundles(records: list[ChainRecord], cuts: list[int]) -> list[Bundle]:
    bundles, frontier, previous, done = [], MerkleFrontier(), None, 0
    for number, cut in enumerate(cuts, start=1):
        before = [node.hex() for node in frontier.nodes]
        frontier.extend(bytes.fromhex(r.hash) for r in records[done:cut])
        statement = checkpoint_statement(
            scope=f"tenant:{TENANT}", number=number, tree_size=cut, first_seq=done + 1,
            root=frontier.root(), last_hash=records[cut - 1].hash,
            last_created_at=records[cut - 1].created_at,
            previous=previous_link(previous) if previous else None, key_id=SIGNER.key_id,
            created_at=datetime(2026, 11, 2, tzinfo=UTC),
        )  # fmt: skip
        bundles.append(
            build_bundle(
                statement=statement,
                signature=b64url(SIGNER.sign(canonical_json(statement))),
                key_id=SIGNER.key_id,
                previous_frontier=before,
                records=records[done:cut],
            )
        )
        previous, done = statement, cut
    return bundles


def _write(bundles: list[Bundle], root: Path) -> Path:
    for bundle in bundles:
        directory = root / f"{bundle.statement['number']:010d}"
        directory.mkdir(parents=True)
        for name, data in bundle.files().items():
            (directory / name).write_bytes(data)
    return root


def test_consecutive_bundles_verify_alone_and_together(tmp_path: Path) -> None:
    bundles = _bundles(_records(40), [13, 29, 40])
    for bundle in bundles:
        problems, _ = verify_bundle(bundle, KEYS, "b")
        assert problems == []
    report = verify_bundle_path(_write(bundles, tmp_path), KEYS)
    assert report.ok, report.problems
    assert (report.events_checked, report.checkpoints_checked) == (40, 3)


def _tampered(bundle: Bundle, line: int, change: dict[str, Any]) -> Bundle:
    lines = bundle.events.splitlines(keepends=True)
    record = json.loads(lines[line])
    record.update(change)
    lines[line] = json.dumps(record).encode() + b"\n"
    events = b"".join(lines)
    manifest = {**bundle.manifest, "events": {**bundle.manifest["events"]}}
    manifest["events"]["sha256"] = hashlib.sha256(events).hexdigest()
    return Bundle(manifest=manifest, events=events)


@pytest.mark.parametrize(
    ("change", "line", "seq", "kind"),
    [
        ({"event_type": "DEAL_CREATED"}, 4, 18, "hash_mismatch"),
        ({"event_json": {"n": 0}}, 0, 14, "payload_hash_mismatch"),
        ({"seq": 99}, 2, 16, "missing"),
    ],
)
def test_an_edited_bundle_names_the_first_bad_seq(
    change: dict[str, Any], line: int, seq: int, kind: str
) -> None:
    bundle = _tampered(_bundles(_records(40), [13, 29, 40])[1], line, change)
    problems, _ = verify_bundle(bundle, KEYS, "b")
    assert (problems[0].seq, problems[0].kind) == (seq, kind)


def test_a_dropped_line_and_a_resigned_manifest_are_caught(tmp_path: Path) -> None:
    bundles = _bundles(_records(30), [10, 30])
    events = bundles[1].events.splitlines(keepends=True)
    dropped = Bundle(manifest=bundles[1].manifest, events=b"".join(events[:5] + events[6:]))
    problems, _ = verify_bundle(dropped, KEYS, "b")
    assert [p.kind for p in problems][:2] == ["bundle_malformed", "missing"]
    assert problems[1].seq == 16

    mallory = LocalKeySigner.generate()
    statement = {**bundles[1].statement, "key_id": mallory.key_id}
    resigned = Bundle(
        manifest={**bundles[1].manifest, "statement": statement, "key_id": mallory.key_id,
                  "signature": b64url(mallory.sign(canonical_json(statement)))},
        events=bundles[1].events,
    )  # fmt: skip
    problems, _ = verify_bundle(resigned, KEYS, "b")
    assert problems[0].kind == "checkpoint_signature_invalid"

    forged_root = {**bundles[1].statement, "root": "00" * 32}
    forged = Bundle(
        manifest={**bundles[1].manifest, "statement": forged_root}, events=bundles[1].events
    )
    problems, _ = verify_bundle(forged, KEYS, "b")
    assert {p.kind for p in problems} == {
        "checkpoint_signature_invalid",
        "checkpoint_root_mismatch",
    }


def test_a_bundle_must_extend_the_previous_one(tmp_path: Path) -> None:
    first = _bundles(_records(20), [8, 20])
    other = _bundles(_records(25), [8, 25])  # a different history after seq 8
    report = verify_bundle_path(_write([first[0], other[1]], tmp_path), KEYS)
    assert report.ok  # each is fine alone, and other[1] does extend the same first 8 events
    frontier_lie = Bundle(
        manifest={**first[1].manifest, "previous_frontier": [("11" * 32)]}, events=first[1].events
    )
    problems, _ = verify_bundle(frontier_lie, KEYS, "b")
    assert problems[0].kind == "checkpoint_inconsistent"


def test_manifest_round_trips_through_files() -> None:
    bundle = _bundles(_records(5), [5])[0]
    files = bundle.files()
    assert parse_bundle(files[MANIFEST_FILE], files[EVENTS_FILE]) == bundle
    with pytest.raises(ValueError, match="manifest"):
        parse_bundle(b'{"format": "other"}', b"")


@pytest.mark.parametrize("store_kind", ["memory", "filesystem"])
def test_blob_stores_are_write_once(store_kind: str, tmp_path: Path) -> None:
    store = InMemoryBlobStore() if store_kind == "memory" else FilesystemBlobStore(tmp_path)
    store.put("tenants/a/0000000001/manifest.json", b"{}", content_type="application/json")
    with pytest.raises(BlobExists):
        store.put("tenants/a/0000000001/manifest.json", b"[]", content_type="application/json")
    assert store.get("tenants/a/0000000001/manifest.json") == b"{}"
    assert store.list("tenants/a/") == ["tenants/a/0000000001/manifest.json"]
    assert store.list("tenants/b/") == []
    with pytest.raises(BlobMissing):
        store.get("tenants/a/none")
    with pytest.raises(ValueError, match="invalid blob name"):
        store.put("../escape", b"", content_type="text/plain")
