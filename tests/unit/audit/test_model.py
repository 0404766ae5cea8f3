"""Pure chain rules: canonical JSON, record hashing, RFC 9162 Merkle trees, segment checks."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785

from shared.audit.model import (
    EMPTY_ROOT,
    GENESIS_HASH,
    ChainRecord,
    MerkleFrontier,
    ProblemKind,
    canonical_json,
    check_segment,
    leaf_hash,
    load_canonical,
    merkle_root,
    node_hash,
    parse_timestamp,
    record_template,
    seal,
)

ALPHABET = ["a", "Z", "é", "\u2028", "\x7f", "\x01", '"', "\\", "€", "😀", "\ue000", " ", "\n"]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**53) + 1, 2**53 - 1)
    if kind == 2:
        return rng.choice([0.1, -2.5, 1e21, 1e-7, 3.0, -0.0, 123456.789, 5e-324])
    if kind in (3, 4):
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(6)))
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 4))) for _ in range(4)]
    return {key: _random_value(rng, depth + 1) for key in keys}


def test_canonical_json_is_rfc8785_for_random_values() -> None:
    rng = random.Random(8785)
    for _ in range(3_000):
        value = _random_value(rng)
        assert canonical_json(value) == rfc8785.dumps(value), value


def test_canonical_json_rejects_what_i_json_forbids() -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json({"n": 2**53})
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json({"f": float("nan")})


def _record(rng: random.Random, seq: int, prev: str, when: datetime) -> ChainRecord:
    return seal(
        tenant_id=rng.choice([None, "7d0c4c4e-2f0b-4d53-9a4e-2b8b0a5e1c11"]),
        seq=seq,
        actor={"type": "user", "id": "u-" + rng.choice(ALPHABET), "display": "Zoë"},
        event_type="SEND_SUCCEEDED",
        event_json={"x": _random_value(rng), rng.choice(ALPHABET): _random_value(rng, 2)},
        correlation_id=rng.choice([None, "c-1", "é\u2028"]),
        idempotency_key=rng.choice([None, "k"]),
        prev_hash=prev,
        created_at=when,
    )


def test_record_hash_is_sha256_of_rfc8785_of_the_record_without_hash() -> None:
    rng = random.Random(1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for seq in range(1, 500):
        record = _record(rng, seq, GENESIS_HASH, start)
        expected = hashlib.sha256(rfc8785.dumps(record.hashed_fields())).hexdigest()
        assert record.hash == expected
        assert record.compute_hash() == expected
        assert record.canonical_bytes() == rfc8785.dumps(record.hashed_fields())
        assert ChainRecord.from_json(record.to_json()) == record


def _chain(n: int) -> list[ChainRecord]:
    rng = random.Random(n)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        record = _record(rng, seq, prev, start + timedelta(microseconds=seq))
        records.append(record)
        prev = record.hash
    return records


def test_an_intact_chain_passes_and_yields_its_leaves() -> None:
    records = _chain(30)
    result = check_segment(records, first_seq=1, prev_hash=None, prev_created_at=None, last_seq=30)
    assert result.problem is None
    assert result.leaves == [bytes.fromhex(r.hash) for r in records]


@pytest.mark.parametrize(
    ("change", "seq", "kind"),
    [
        (lambda rs: rs.__setitem__(9, replace(rs[9], event_type="X")), 10, ProblemKind.HASH),
        (
            lambda rs: rs.__setitem__(9, replace(rs[9], event_json={"x": 1})),
            10,
            ProblemKind.PAYLOAD_HASH,
        ),
        (lambda rs: rs.pop(9), 10, ProblemKind.MISSING),
        (lambda rs: rs.pop(), 30, ProblemKind.MISSING),
        (lambda rs: rs.insert(5, rs[4]), 5, ProblemKind.OUT_OF_ORDER),
        (lambda rs: rs.__setitem__(0, replace(rs[0], prev_hash="f" * 64)), 1, ProblemKind.HASH),
    ],
)
def test_segment_problems_name_the_first_bad_seq(change: Any, seq: int, kind: ProblemKind) -> None:
    records = _chain(30)
    change(records)
    result = check_segment(records, first_seq=1, prev_hash=None, prev_created_at=None, last_seq=30)
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (seq, kind)


def test_a_resealed_record_is_blamed_through_its_successors_commitment() -> None:
    records = _chain(10)
    original = records[3]
    records[3] = seal(
        tenant_id=original.tenant_id, seq=4, actor=original.actor, event_type="FORGED",
        event_json=original.event_json, correlation_id=None, idempotency_key=None,
        prev_hash=original.prev_hash, created_at=parse_timestamp(original.created_at),
    )  # fmt: skip
    result = check_segment(records, first_seq=1, prev_hash=None, prev_created_at=None)
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (4, ProblemKind.ALTERED)


def test_timestamps_must_not_go_backwards() -> None:
    rng = random.Random(3)
    first = _record(rng, 1, GENESIS_HASH, datetime(2026, 1, 2, tzinfo=UTC))
    second = _record(rng, 2, first.hash, datetime(2026, 1, 1, tzinfo=UTC))
    result = check_segment([first, second], first_seq=1, prev_hash=None, prev_created_at=None)
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (2, ProblemKind.TIMESTAMP)


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 written recursively, as the RFC states it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def test_merkle_root_matches_rfc9162_for_every_size_up_to_70() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(70)]
    for n in range(71):
        assert merkle_root(leaves[:n]) == _mth(leaves[:n]), n
    assert merkle_root([]) == EMPTY_ROOT


def test_a_frontier_extends_an_older_tree_to_a_newer_root() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(50)]
    for m in (0, 1, 7, 16, 33):
        old = MerkleFrontier()
        old.extend(leaves[:m])
        resumed = MerkleFrontier(old.size, old.nodes)
        assert resumed.root() == _mth(leaves[:m])
        resumed.extend(leaves[m:])
        assert resumed.root() == _mth(leaves)
    with pytest.raises(ValueError, match="nodes"):
        MerkleFrontier(6, [EMPTY_ROOT])


def test_load_canonical_gives_rfc8785_bytes_for_any_json_text() -> None:
    rng = random.Random(9162)
    for _ in range(2_000):
        value = {"k": _random_value(rng), "n": rng.choice([2**53 - 1, -7, 0])}
        for text in (
            json.dumps(value),
            json.dumps(value, ensure_ascii=False, indent=1),
            json.dumps(value, ensure_ascii=False, separators=(", ", ": ")),
        ):
            parsed, canonical = load_canonical(text)
            assert parsed == json.loads(text)
            assert canonical == rfc8785.dumps(parsed), text
    with pytest.raises(rfc8785.CanonicalizationError):
        load_canonical('{"n": 9007199254740993}')


def test_a_record_template_completes_to_the_records_canonical_bytes() -> None:
    rng = random.Random(5)
    for seq in range(1, 200):
        record = _record(
            rng, seq, hashlib.sha256(bytes([seq % 256])).hexdigest(), datetime.now(UTC)
        )
        template = record_template(
            tenant_id=record.tenant_id, actor=record.actor, event_type=record.event_type,
            event_json=record.event_json, correlation_id=record.correlation_id,
            idempotency_key=record.idempotency_key,
        )  # fmt: skip
        completed = (
            template.before_time + record.created_at + template.before_prev + record.prev_hash
            + template.before_seq + str(record.seq) + template.end
        )  # fmt: skip
        assert completed.encode() == rfc8785.dumps(record.hashed_fields())
        assert template.payload_hash == record.payload_hash
