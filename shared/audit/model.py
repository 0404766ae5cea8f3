"""Pure audit-chain rules: canonical hashing, the hash chain, RFC 9162 Merkle trees.

Nothing here touches the database, the clock or the network, so the verifier, the
checkpoint job and the bundle reader all share one definition of a valid chain.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import rfc8785

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
# RFC 8785 / I-JSON: integers must be exactly representable as IEEE 754 doubles.
_MAX_SAFE_INT = 2**53 - 1


def _plain_json(value: Any) -> bool:
    """True when `json.dumps` already produces the RFC 8785 form of `value`.

    They differ only for floats (ECMAScript number formatting), integers outside the
    I-JSON range, and object keys whose UTF-16 order differs from code-point order (only
    possible with non-ASCII keys). Everything else (escaping, separators, sorting ASCII
    keys) is identical, and `json` is ~4x faster than the pure-Python canonicalizer.

    Exact type checks first (every audited action walks its payload here); subclasses
    such as enums take `_plain_json_any`.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            item_kind = type(item)
            if item_kind is str or item is None or item_kind is bool:
                continue
            if not _plain_json(item):
                return False
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    if kind is list or kind is tuple:
        return all(_plain_json(item) for item in value)
    return _plain_json_any(value)


def _plain_json_any(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key.isascii() and _plain_json(item)
            for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_plain_json(item) for item in value)
    return False


# One encoder: json.dumps with non-default options builds a new encoder on every call.
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
# What that encoder does to a string (escapes only '"', '\\' and control characters).
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value."""
    if value is None:
        return b"null"
    if _plain_json(value):
        try:
            return _encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # lone surrogates: let rfc8785 raise its own error
    return rfc8785.dumps(value)


_decode = json.JSONDecoder().decode
# A JSON number token follows ':', '[' or ',' (objects and arrays), so these find every float
# (a digit then '.', 'e' or 'E') and every integer of 16+ digits (beyond 2**53 - 1 is
# possible). Matches inside strings only cost the slow path, never correctness.
_UNUSUAL_NUMBER = re.compile(r"[:\[,]\s*-?\d+[.eE]|[:\[,]\s*-?\d{16}")


def load_canonical(text: str) -> tuple[Any, bytes]:
    """Parse JSON text and return (value, its RFC 8785 bytes), canonicalizing only once.

    Text that is ASCII without \\u escapes (so its keys are ASCII) and has no float or
    large integer is canonicalized by `json` directly, skipping `canonical_json`'s value walk.
    """
    value = _decode(text)
    if (
        not text.isascii()
        or "\\u" in text
        or _UNUSUAL_NUMBER.search(text)
        or not text.lstrip().startswith(("{", "["))
    ):
        return value, canonical_json(value)
    return value, _encode(value).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload_hash(payload: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(dict(payload)))


def format_timestamp(moment: datetime) -> str:
    """UTC with microseconds: the precision PostgreSQL keeps, so it survives a round trip."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """One audit event as it is hashed. `tenant_id` is None on the platform chain."""

    tenant_id: str | None
    seq: int
    actor: Mapping[str, Any]
    event_type: str
    event_json: Mapping[str, Any]
    correlation_id: str | None
    idempotency_key: str | None
    payload_hash: str
    prev_hash: str
    created_at: str
    hash: str = ""
    # Canonical JSON of event_json / actor when already known (sealed here, or read and
    # canonicalized once by the repository): saves encoding them again for each hash.
    # init=False: `dataclasses.replace` must not carry them over to changed content.
    canonical_payload: bytes | None = field(default=None, init=False, compare=False, repr=False)
    canonical_actor: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def remember_canonical(self, payload: bytes | None, actor: bytes | None = None) -> None:
        """Cache canonical bytes computed from this record's own event_json / actor."""
        object.__setattr__(self, "canonical_payload", payload)
        object.__setattr__(self, "canonical_actor", actor)

    def hashed_fields(self) -> dict[str, Any]:
        """The record without `hash`: exactly what `hash` commits to."""
        return {
            "v": FORMAT_VERSION,
            "tenant_id": self.tenant_id,
            "seq": self.seq,
            "actor": self.actor,
            "event_type": self.event_type,
            "event_json": self.event_json,
            "correlation_id": self.correlation_id,
            "idempotency_key": self.idempotency_key,
            "payload_hash": self.payload_hash,
            "prev_hash": self.prev_hash,
            "created_at": self.created_at,
        }

    def canonical_bytes(self, canonical_payload: bytes | None = None) -> bytes:
        """RFC 8785 bytes of `hashed_fields()` (see `_record_bytes`)."""
        return _record_bytes(
            self,
            canonical_payload if canonical_payload is not None else canonical_json(self.event_json),
        )

    def digests(self) -> tuple[str, str]:
        """(payload hash, record hash) recomputed from the content."""
        payload = (
            self.canonical_payload
            if self.canonical_payload is not None
            else canonical_json(self.event_json)
        )
        return sha256_hex(payload), sha256_hex(self.canonical_bytes(payload))

    def compute_hash(self) -> str:
        return sha256_hex(self.canonical_bytes())

    def to_json(self) -> dict[str, Any]:
        return {**self.hashed_fields(), "hash": self.hash}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainRecord:
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unsupported audit record version {data.get('v')!r}")
        return cls(
            tenant_id=data["tenant_id"],
            seq=int(data["seq"]),
            actor=data["actor"],
            event_type=data["event_type"],
            event_json=data["event_json"],
            correlation_id=data["correlation_id"],
            idempotency_key=data["idempotency_key"],
            payload_hash=data["payload_hash"],
            prev_hash=data["prev_hash"],
            created_at=data["created_at"],
            hash=data["hash"],
        )


def _scalar(value: Any) -> bytes:
    # The common case (a string column) without the generic value walk.
    if type(value) is str:
        try:
            return _encode_str(value).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return canonical_json(value)


def _record_bytes(record: ChainRecord, canonical_payload: bytes) -> bytes:
    """RFC 8785 bytes of `record.hashed_fields()`, assembled member by member.

    The same bytes as `canonical_json(record.hashed_fields())` (a unit test holds them
    equal): the member names are fixed and written in RFC 8785 order, and each value is
    canonicalized on its own, so the payload is canonicalized once for both hashes.
    """
    return b"".join(
        (
            b'{"actor":', record.canonical_actor or canonical_json(record.actor),
            b',"correlation_id":', _scalar(record.correlation_id),
            b',"created_at":', _scalar(record.created_at),
            b',"event_json":', canonical_payload,
            b',"event_type":', _scalar(record.event_type),
            b',"idempotency_key":', _scalar(record.idempotency_key),
            b',"payload_hash":', _scalar(record.payload_hash),
            b',"prev_hash":', _scalar(record.prev_hash),
            b',"seq":', canonical_json(record.seq),
            b',"tenant_id":', _scalar(record.tenant_id),
            b',"v":', canonical_json(FORMAT_VERSION), b"}",
        )
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RecordTemplate:
    """A record's canonical bytes around the three values only the locked head knows.

    canonical = before_time + created_at + before_prev + prev_hash + before_seq + seq + end,
    so the database can hash the record in the statement that locks the head and inserts it.
    """

    before_time: str
    before_prev: str
    before_seq: str
    end: str
    payload_hash: str
    canonical_payload: bytes


def record_template(
    *,
    tenant_id: str | None,
    actor: Mapping[str, Any],
    event_type: str,
    event_json: Mapping[str, Any],
    correlation_id: str | None,
    idempotency_key: str | None,
) -> RecordTemplate:
    canonical_payload = canonical_json(event_json)
    digest = sha256_hex(canonical_payload)
    before_time = b"".join(
        (b'{"actor":', canonical_json(actor), b',"correlation_id":', _scalar(correlation_id),
         b',"created_at":"')
    )  # fmt: skip
    before_prev = b"".join(
        (b'","event_json":', canonical_payload, b',"event_type":', _scalar(event_type),
         b',"idempotency_key":', _scalar(idempotency_key), b',"payload_hash":', _scalar(digest),
         b',"prev_hash":"')
    )  # fmt: skip
    end = b"".join(
        (b',"tenant_id":', _scalar(tenant_id), b',"v":', canonical_json(FORMAT_VERSION), b"}")
    )
    return RecordTemplate(
        before_time=before_time.decode(),
        before_prev=before_prev.decode(),
        before_seq='","seq":',
        end=end.decode(),
        payload_hash=digest,
        canonical_payload=canonical_payload,
    )


def seal(
    *,
    tenant_id: str | None,
    seq: int,
    actor: Mapping[str, Any],
    event_type: str,
    event_json: Mapping[str, Any],
    correlation_id: str | None,
    idempotency_key: str | None,
    prev_hash: str,
    created_at: datetime,
) -> ChainRecord:
    """A new record linked to `prev_hash`, with its payload hash and own hash filled in."""
    canonical_payload = canonical_json(event_json)
    record = ChainRecord(
        tenant_id=tenant_id,
        seq=seq,
        actor=actor,
        event_type=event_type,
        event_json=event_json,
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
        payload_hash=sha256_hex(canonical_payload),
        prev_hash=prev_hash,
        created_at=format_timestamp(created_at),
    )
    record.remember_canonical(canonical_payload)
    # Frozen for everyone else; set once here, before anyone holds the record.
    object.__setattr__(record, "hash", sha256_hex(_record_bytes(record, canonical_payload)))
    return record


class ProblemKind(StrEnum):
    MISSING = "missing"
    OUT_OF_ORDER = "out_of_order"
    PAYLOAD_HASH = "payload_hash_mismatch"
    HASH = "hash_mismatch"
    ALTERED = "altered_predecessor"
    GENESIS = "bad_genesis_link"
    TIMESTAMP = "timestamp_not_monotonic"
    HEAD = "head_mismatch"
    CHECKPOINT_SIZE = "checkpoint_beyond_chain"
    CHECKPOINT_ROOT = "checkpoint_root_mismatch"
    CHECKPOINT_SIGNATURE = "checkpoint_signature_invalid"
    CHECKPOINT_CONSISTENCY = "checkpoint_inconsistent"
    BUNDLE = "bundle_malformed"


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    kind: ProblemKind
    detail: str


@dataclass(slots=True)
class SegmentResult:
    """What checking a run of consecutive records found. `leaves` are the recomputed hashes."""

    leaves: list[bytes] = field(default_factory=list)
    problem: Problem | None = None
    last: ChainRecord | None = None


def check_segment(
    records: Iterable[ChainRecord],
    *,
    first_seq: int,
    prev_hash: str | None,
    prev_created_at: str | None,
    last_seq: int | None = None,
) -> SegmentResult:
    """Check records that should hold seq `first_seq`, `first_seq + 1`, ... in order.

    `prev_hash` / `prev_created_at` belong to the stored record at `first_seq - 1` (ignored
    at the genesis; None when unknown, e.g. that record is missing and the segment before
    reports it). With `last_seq`, the segment must reach it. Stops at the first problem.
    When a record is intact (its own hash recomputes) but its `prev_hash` differs from its
    predecessor's stored hash, the predecessor is the one that changed: an intact record
    committed to the original, so the problem is reported at the predecessor's seq.
    """
    result = SegmentResult()
    expected = first_seq
    link = GENESIS_HASH if first_seq == 1 else prev_hash
    last_time = prev_created_at
    for record in records:
        if record.seq != expected:
            if record.seq > expected:
                result.problem = Problem(
                    expected,
                    ProblemKind.MISSING,
                    f"seq {expected} is missing (next present is {record.seq})",
                )
            else:
                result.problem = Problem(
                    record.seq,
                    ProblemKind.OUT_OF_ORDER,
                    f"seq {record.seq} appears again after seq {expected - 1}",
                )
            return result
        try:
            payload_digest, computed = record.digests()
        except (rfc8785.CanonicalizationError, TypeError, ValueError):
            result.problem = Problem(record.seq, ProblemKind.HASH, "content is not I-JSON")
            return result
        if payload_digest != record.payload_hash:
            result.problem = Problem(
                record.seq, ProblemKind.PAYLOAD_HASH, "event_json does not match payload_hash"
            )
            return result
        if computed != record.hash:
            result.problem = Problem(
                record.seq, ProblemKind.HASH, "stored hash does not match the recomputed hash"
            )
            return result
        if link is not None and record.prev_hash != link:
            if record.seq == 1:
                result.problem = Problem(
                    1, ProblemKind.GENESIS, "the first event does not link to the genesis hash"
                )
            else:
                result.problem = Problem(
                    record.seq - 1,
                    ProblemKind.ALTERED,
                    f"seq {record.seq - 1} differs from the event seq {record.seq} "
                    "committed to (prev_hash)",
                )
            return result
        if last_time is not None and record.created_at < last_time:
            result.problem = Problem(
                record.seq,
                ProblemKind.TIMESTAMP,
                f"created_at {record.created_at} is earlier than {last_time}",
            )
            return result
        result.leaves.append(bytes.fromhex(computed))
        result.last = record
        link = record.hash
        last_time = record.created_at
        expected += 1
    if last_seq is not None and expected <= last_seq:
        result.problem = Problem(
            expected, ProblemKind.MISSING, f"seq {expected} is missing (the chain ends early)"
        )
    return result


# RFC 9162 §2.1.1: domain-separated leaf and interior node hashes.
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleFrontier:
    """The right edge of an RFC 9162 tree: roots of its perfect subtrees, largest first.

    Appending costs amortised O(1) hashes, and the frontier of a tree of size m is all a
    verifier needs (besides the new leaves) to recompute the root of any larger tree, which
    is what makes two checkpoints provably consistent: fold(frontier_m) = root_m, and
    extending that same frontier with leaves m+1..n must give root_n.
    """

    __slots__ = ("_nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(nodes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} has {bin(size).count('1')} nodes")
        if any(len(node) != 32 for node in nodes):
            raise ValueError("frontier nodes are 32-byte SHA-256 digests")
        self.size = size
        self._nodes = list(nodes)

    @property
    def nodes(self) -> list[bytes]:
        return list(self._nodes)

    def append(self, data: bytes) -> None:
        digest = leaf_hash(data)
        size = self.size
        while size & 1:
            digest = node_hash(self._nodes.pop(), digest)
            size >>= 1
        self._nodes.append(digest)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for data in leaves:
            self.append(data)

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        digest = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            digest = node_hash(node, digest)
        return digest

    def copy(self) -> MerkleFrontier:
        return MerkleFrontier(self.size, self._nodes)


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """RFC 9162 MTH over the leaf data (here: each event's 32-byte hash)."""
    frontier = MerkleFrontier()
    frontier.extend(leaves)
    return frontier.root()


CHECKPOINT_KIND = "asep-audit-checkpoint"


def checkpoint_statement(
    *,
    scope: str,
    number: int,
    tree_size: int,
    first_seq: int,
    root: bytes,
    last_hash: str,
    last_created_at: str,
    previous: Mapping[str, Any] | None,
    key_id: str,
    created_at: datetime,
) -> dict[str, Any]:
    """The signed body of a checkpoint; its RFC 8785 bytes are what the key signs.

    `previous` repeats the previous checkpoint's number, tree_size, root, last_hash and
    last_created_at, so each signed checkpoint names the one it extends.
    """
    return {
        "v": FORMAT_VERSION,
        "kind": CHECKPOINT_KIND,
        "scope": scope,
        "number": number,
        "tree_size": tree_size,
        "first_seq": first_seq,
        "root": root.hex(),
        "last_hash": last_hash,
        "last_created_at": last_created_at,
        "previous": dict(previous) if previous is not None else None,
        "key_id": key_id,
        "created_at": format_timestamp(created_at),
    }


def previous_link(statement: Mapping[str, Any]) -> dict[str, Any]:
    """What the next checkpoint's `previous` must say about the checkpoint `statement`."""
    return {
        key: statement[key]
        for key in ("number", "tree_size", "root", "last_hash", "last_created_at")
    }
