"""Audit bundles: one checkpoint's events (JSONL) and its signed manifest, as files.

A bundle verifies on its own: the manifest carries the signed checkpoint statement, and
the frontier of the previous tree, which must fold to the previous root the statement
names and, extended with this bundle's events, must give the signed root (RFC 9162
hashing). That is the consistency proof between consecutive checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.audit.model import ChainRecord, canonical_json, sha256_hex
from shared.audit.signing import ALGORITHM

BUNDLE_FORMAT = "asep-audit-bundle/1"
EVENTS_FILE = "events.jsonl"
MANIFEST_FILE = "manifest.json"


def scope_prefix(scope: str) -> str:
    """Blob prefix for a chain: tenants/<uuid> or platform."""
    if scope.startswith("tenant:"):
        return f"tenants/{scope.removeprefix('tenant:')}"
    return scope


def bundle_prefix(scope: str, number: int) -> str:
    return f"{scope_prefix(scope)}/{number:010d}"


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    events: bytes

    @property
    def statement(self) -> dict[str, Any]:
        statement: dict[str, Any] = self.manifest["statement"]
        return statement

    def files(self) -> dict[str, bytes]:
        return {
            EVENTS_FILE: self.events,
            MANIFEST_FILE: json.dumps(self.manifest, indent=2, sort_keys=True).encode() + b"\n",
        }


def encode_events(records: Iterable[ChainRecord]) -> bytes:
    return b"".join(canonical_json(record.to_json()) + b"\n" for record in records)


def decode_events(data: bytes) -> list[ChainRecord]:
    return [ChainRecord.from_json(json.loads(line)) for line in data.splitlines() if line.strip()]


def build_bundle(
    *,
    statement: Mapping[str, Any],
    signature: str,
    key_id: str,
    previous_frontier: list[str],
    records: Iterable[ChainRecord],
) -> Bundle:
    events = encode_events(records)
    manifest = {
        "format": BUNDLE_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key_id,
        "signature": signature,
        "statement": dict(statement),
        "previous_frontier": previous_frontier,
        "events": {
            "file": EVENTS_FILE,
            "sha256": sha256_hex(events),
            "count": statement["tree_size"] - statement["first_seq"] + 1,
        },
    }
    return Bundle(manifest=manifest, events=events)


def parse_bundle(manifest_bytes: bytes, events: bytes) -> Bundle:
    manifest = json.loads(manifest_bytes)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"not an {BUNDLE_FORMAT} manifest")
    return Bundle(manifest=manifest, events=events)
