"""The audit verifier: recompute everything and name the first bad seq.

Checks, per chain: every record's payload hash and own hash (RFC 8785), `prev_hash` links,
gapless seq, monotonic timestamps, the head row; every checkpoint's ES256 signature against
the pinned keys, its link to the previous checkpoint, and its root recomputed from the
events (RFC 9162). Large chains are checked in parallel: worker processes each read and
hash a range of seqs; the parent folds their leaf hashes into the Merkle tree in order.
Bundles (downloaded from Blob) verify on their own, consecutive ones against each other.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from shared.audit.bundle import EVENTS_FILE, MANIFEST_FILE, Bundle, decode_events, parse_bundle
from shared.audit.checkpoints import ChainOpener, platform_chain, tenant_chain
from shared.audit.model import (
    GENESIS_HASH,
    ChainRecord,
    MerkleFrontier,
    Problem,
    ProblemKind,
    canonical_json,
    check_segment,
    previous_link,
    sha256_hex,
)
from shared.audit.repository import PLATFORM_SCOPE, CheckpointRow, HeadState
from shared.audit.schemas import ProblemOut, VerificationReport
from shared.audit.signing import b64url_decode, verify_es256
from shared.config import get_settings
from shared.db.server import database_urls

PublicKeys = Mapping[str, ec.EllipticCurvePublicKey]

# Below this many events, forking workers costs more than it saves.
PARALLEL_THRESHOLD = 50_000
CHUNK_EVENTS = 25_000

CHAIN_KINDS = frozenset(
    {
        ProblemKind.MISSING,
        ProblemKind.OUT_OF_ORDER,
        ProblemKind.PAYLOAD_HASH,
        ProblemKind.HASH,
        ProblemKind.ALTERED,
        ProblemKind.GENESIS,
        ProblemKind.TIMESTAMP,
        ProblemKind.HEAD,
    }
)


def _report(
    scope: str, problems: list[Problem], events: int, checkpoints: int, started: float
) -> VerificationReport:
    # A precise chain problem names the bad event; checkpoint problems only bound a range.
    chain = [p.seq for p in problems if p.kind in CHAIN_KINDS]
    other = [p.seq for p in problems if p.kind not in CHAIN_KINDS]
    first_bad = min(chain) if chain else (min(other) if other else None)
    return VerificationReport(
        scope=scope,
        ok=not problems,
        events_checked=events,
        checkpoints_checked=checkpoints,
        first_bad_seq=first_bad,
        problems=[ProblemOut(seq=p.seq, kind=p.kind.value, detail=p.detail) for p in problems],
        seconds=round(time.perf_counter() - started, 3),
    )


def _check_signature(
    label: str,
    seq: int,
    statement: Mapping[str, Any],
    key_id: str,
    signature: str,
    keys: PublicKeys,
) -> Problem | None:
    key = keys.get(key_id)
    if key is None or statement.get("key_id") != key_id:
        return Problem(
            seq, ProblemKind.CHECKPOINT_SIGNATURE, f"{label}: key {key_id} is not pinned"
        )
    try:
        raw = b64url_decode(signature)
    except ValueError:
        raw = b""
    if not verify_es256(key, canonical_json(dict(statement)), raw):
        return Problem(seq, ProblemKind.CHECKPOINT_SIGNATURE, f"{label}: signature does not verify")
    return None


def check_checkpoint_rows(
    scope: str, checkpoints: Sequence[CheckpointRow], keys: PublicKeys
) -> list[Problem]:
    """Signatures, row-vs-statement agreement and the links between consecutive checkpoints."""
    problems: list[Problem] = []
    previous: CheckpointRow | None = None
    for checkpoint in checkpoints:
        label = f"checkpoint {checkpoint.number}"
        statement = checkpoint.statement
        signature_problem = _check_signature(
            label, checkpoint.first_seq, statement, checkpoint.key_id, checkpoint.signature, keys
        )
        if signature_problem is not None:
            problems.append(signature_problem)
        expected_previous = previous_link(previous.statement) if previous is not None else None
        expected = {
            "scope": scope,
            "number": previous.number + 1 if previous is not None else 1,
            "first_seq": previous.tree_size + 1 if previous is not None else 1,
            "tree_size": checkpoint.tree_size,
            "root": checkpoint.root,
            "previous": expected_previous,
        }
        wrong = sorted(key for key, value in expected.items() if statement.get(key) != value)
        if wrong or checkpoint.first_seq != expected["first_seq"]:
            problems.append(
                Problem(
                    checkpoint.first_seq,
                    ProblemKind.CHECKPOINT_CONSISTENCY,
                    f"{label} does not extend checkpoint {checkpoint.number - 1} "
                    f"(mismatched: {', '.join(wrong) or 'first_seq'})",
                )
            )
        previous = checkpoint
    return problems


class _TreeCheck:
    """Folds leaves in seq order and checks each checkpoint's root when the tree reaches it."""

    def __init__(self, checkpoints: Sequence[CheckpointRow]) -> None:
        self.frontier = MerkleFrontier()
        self._pending = sorted(checkpoints, key=lambda c: c.tree_size)
        self.problems: list[Problem] = []

    def feed(self, leaves: Iterable[bytes]) -> None:
        pending = self._pending
        next_size = pending[0].tree_size if pending else -1
        for leaf in leaves:
            self.frontier.append(leaf)
            if self.frontier.size == next_size:
                checkpoint = pending.pop(0)
                statement = checkpoint.statement
                if self.frontier.root().hex() != statement.get(
                    "root"
                ) or leaf.hex() != statement.get("last_hash"):
                    self.problems.append(
                        Problem(
                            checkpoint.first_seq,
                            ProblemKind.CHECKPOINT_ROOT,
                            f"checkpoint {checkpoint.number}: signed root differs from the root "
                            f"of seq 1..{checkpoint.tree_size} (an event in "
                            f"{checkpoint.first_seq}..{checkpoint.tree_size} was changed)",
                        )
                    )
                next_size = pending[0].tree_size if pending else -1

    def finish(self) -> None:
        for checkpoint in self._pending:
            self.problems.append(
                Problem(
                    self.frontier.size + 1,
                    ProblemKind.CHECKPOINT_SIZE,
                    f"checkpoint {checkpoint.number} covers seq 1..{checkpoint.tree_size} "
                    f"but the chain ends at {self.frontier.size}",
                )
            )
        self._pending = []


def _head_problems(
    last: ChainRecord | None, head_before: HeadState | None, head_after: HeadState | None
) -> list[Problem]:
    seen = last.seq if last is not None else 0
    if head_before is not None and seen < head_before.seq:
        return [
            Problem(
                seen + 1,
                ProblemKind.MISSING,
                f"seq {seen + 1} is missing (head is at {head_before.seq})",
            )
        ]
    if head_after is None:
        return []
    if seen > head_after.seq:
        return [
            Problem(
                head_after.seq + 1, ProblemKind.HEAD, f"events past the head (seq {head_after.seq})"
            )
        ]
    if last is not None and seen == head_after.seq and head_after.hash != last.hash:
        return [Problem(seen, ProblemKind.HEAD, f"seq {seen} differs from the hash the head holds")]
    return []


def verify_records(
    scope: str,
    records: Iterable[ChainRecord],
    *,
    checkpoints: Sequence[CheckpointRow],
    keys: PublicKeys,
    head_before: HeadState | None,
    head_after: Callable[[], HeadState | None],
) -> VerificationReport:
    """Verify one whole chain given as records in seq order (single process).

    `head_after` is read once the records are consumed, so events appended meanwhile are
    not mistaken for events written past the head.
    """
    started = time.perf_counter()
    problems = check_checkpoint_rows(scope, checkpoints, keys)
    segment = check_segment(records, first_seq=1, prev_hash=GENESIS_HASH, prev_created_at=None)
    tree = _TreeCheck(checkpoints)
    tree.feed(segment.leaves)
    if segment.problem is not None:
        problems.append(segment.problem)
    else:
        problems.extend(_head_problems(segment.last, head_before, head_after()))
        tree.finish()
    problems.extend(tree.problems)
    return _report(scope, problems, len(segment.leaves), len(checkpoints), started)


def _verify_chunk(
    task: tuple[str | None, int, int | None],
) -> tuple[Problem | None, bytes, ChainRecord | None]:
    tenant, first, last = task
    opener = tenant_chain(uuid.UUID(tenant)) if tenant is not None else platform_chain
    with opener() as chain:
        before = chain.record_at(first - 1) if first > 1 else None
        segment = check_segment(
            chain.records(first_seq=first, last_seq=last, batch=CHUNK_EVENTS),
            first_seq=first,
            prev_hash=before.hash if before is not None else None,
            prev_created_at=before.created_at if before is not None else None,
            last_seq=last,
        )
    return segment.problem, b"".join(segment.leaves), segment.last


def _worker_env() -> dict[str, str]:
    """Point workers at the running database directly, so none tries to start one."""
    urls = database_urls()
    return {
        "DATABASE_URL": urls.owner.render_as_string(hide_password=False),
        "ASEP_APP_DATABASE_URL": urls.app.render_as_string(hide_password=False),
    }


def _worker_init(env: dict[str, str]) -> None:
    os.environ.update(env)
    get_settings.cache_clear()


def _workers() -> int:
    configured = get_settings().audit_verify_workers
    return configured or os.cpu_count() or 1


def _verify_chain(
    scope: str, tenant: str | None, open_chain: ChainOpener, keys: PublicKeys, workers: int | None
) -> VerificationReport:
    started = time.perf_counter()
    with open_chain() as chain:
        head_before = chain.read_head()
        checkpoints = chain.checkpoints_list()
        size = head_before.seq if head_before is not None else 0
        workers = workers or _workers()
        if size < PARALLEL_THRESHOLD or workers < 2:
            return verify_records(
                scope,
                chain.records(),
                checkpoints=checkpoints,
                keys=keys,
                head_before=head_before,
                head_after=chain.read_head,
            )
    problems = check_checkpoint_rows(scope, checkpoints, keys)
    starts = list(range(1, size + 1, CHUNK_EVENTS))
    tasks = [
        (tenant, first, first + CHUNK_EVENTS - 1 if first + CHUNK_EVENTS <= size else None)
        for first in starts
    ]
    tree = _TreeCheck(checkpoints)
    chain_problem: Problem | None = None
    last: ChainRecord | None = None
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_worker_init, initargs=(_worker_env(),)) as pool:
        for problem, leaves, chunk_last in pool.imap(_verify_chunk, tasks):
            tree.feed(leaves[i : i + 32] for i in range(0, len(leaves), 32))
            if chunk_last is not None:
                last = chunk_last
            if problem is not None:
                chain_problem = problem
                pool.terminate()
                break
    if chain_problem is not None:
        problems.append(chain_problem)
    else:
        with open_chain() as chain:
            head_after = chain.read_head()
        problems.extend(_head_problems(last, head_before, head_after))
        tree.finish()
    problems.extend(tree.problems)
    return _report(scope, problems, tree.frontier.size, len(checkpoints), started)


def verify_tenant(
    tenant_id: uuid.UUID, keys: PublicKeys, *, workers: int | None = None
) -> VerificationReport:
    return _verify_chain(
        f"tenant:{tenant_id}", str(tenant_id), tenant_chain(tenant_id), keys, workers
    )


def verify_platform(keys: PublicKeys, *, workers: int | None = None) -> VerificationReport:
    return _verify_chain(PLATFORM_SCOPE, None, platform_chain, keys, workers)


# --- bundles -----------------------------------------------------------------------------


def _bundle_dirs(path: Path) -> list[Path]:
    if (path / MANIFEST_FILE).is_file():
        return [path]
    return sorted(manifest.parent for manifest in path.rglob(MANIFEST_FILE))


def verify_bundle(bundle: Bundle, keys: PublicKeys, label: str) -> tuple[list[Problem], int]:
    """One bundle on its own: signature, events, links, and root from the previous frontier."""
    problems: list[Problem] = []
    try:
        statement = bundle.statement
        first_seq = int(statement["first_seq"])
        tree_size = int(statement["tree_size"])
        previous = statement["previous"]
        manifest = bundle.manifest
        signature_problem = _check_signature(
            label, first_seq, statement, manifest["key_id"], manifest["signature"], keys
        )
        if signature_problem is not None:
            problems.append(signature_problem)
        if sha256_hex(bundle.events) != manifest["events"]["sha256"]:
            problems.append(
                Problem(first_seq, ProblemKind.BUNDLE, f"{label}: events file digest differs")
            )
        records = decode_events(bundle.events)
        scope = statement["scope"]
        tenant = scope.removeprefix("tenant:") if scope.startswith("tenant:") else None
        foreign = [r.seq for r in records if r.tenant_id != tenant]
        if foreign:
            problems.append(
                Problem(foreign[0], ProblemKind.BUNDLE, f"{label}: event of another chain")
            )
        previous_size = int(previous["tree_size"]) if previous is not None else 0
        frontier = MerkleFrontier(
            previous_size, [bytes.fromhex(node) for node in manifest["previous_frontier"]]
        )
        if previous is not None and frontier.root().hex() != previous["root"]:
            problems.append(
                Problem(
                    first_seq,
                    ProblemKind.CHECKPOINT_CONSISTENCY,
                    f"{label}: previous frontier does not fold to the previous root",
                )
            )
        if first_seq != previous_size + 1:
            problems.append(
                Problem(
                    first_seq,
                    ProblemKind.CHECKPOINT_CONSISTENCY,
                    f"{label}: range does not follow the previous checkpoint",
                )
            )
        segment = check_segment(
            records,
            first_seq=first_seq,
            prev_hash=previous["last_hash"] if previous is not None else GENESIS_HASH,
            prev_created_at=previous["last_created_at"] if previous is not None else None,
            last_seq=tree_size,
        )
        if segment.problem is not None:
            problems.append(segment.problem)
        elif len(records) != tree_size - first_seq + 1:
            problems.append(
                Problem(tree_size + 1, ProblemKind.BUNDLE, f"{label}: events past the checkpoint")
            )
        else:
            frontier.extend(segment.leaves)
            if frontier.root().hex() != statement["root"] or (
                segment.last is not None and segment.last.hash != statement["last_hash"]
            ):
                problems.append(
                    Problem(
                        first_seq,
                        ProblemKind.CHECKPOINT_ROOT,
                        f"{label}: root differs from the events",
                    )
                )
        return problems, len(records)
    except (KeyError, TypeError, ValueError) as exc:
        return [Problem(0, ProblemKind.BUNDLE, f"{label}: malformed ({exc})")], 0


def verify_bundle_path(path: Path, keys: PublicKeys) -> VerificationReport:
    """A bundle directory, or a directory of them (consecutive ones must link up)."""
    started = time.perf_counter()
    problems: list[Problem] = []
    events = 0
    bundles: list[Bundle] = []
    directories = _bundle_dirs(path)
    if not directories:
        problems.append(Problem(0, ProblemKind.BUNDLE, f"no {MANIFEST_FILE} under {path}"))
    for directory in directories:
        label = f"bundle {directory.name}"
        try:
            bundle = parse_bundle(
                (directory / MANIFEST_FILE).read_bytes(), (directory / EVENTS_FILE).read_bytes()
            )
        except (OSError, ValueError) as exc:
            problems.append(Problem(0, ProblemKind.BUNDLE, f"{label}: unreadable ({exc})"))
            continue
        bundle_problems, count = verify_bundle(bundle, keys, label)
        problems.extend(bundle_problems)
        events += count
        bundles.append(bundle)
    bundles.sort(key=lambda b: int(b.statement.get("number", 0)))
    for earlier, later in itertools.pairwise(bundles):
        if later.statement.get("previous") != previous_link(
            earlier.statement
        ) or later.statement.get("scope") != earlier.statement.get("scope"):
            problems.append(
                Problem(
                    int(later.statement.get("first_seq", 0)),
                    ProblemKind.CHECKPOINT_CONSISTENCY,
                    f"bundle {later.statement.get('number')} does not extend bundle "
                    f"{earlier.statement.get('number')}",
                )
            )
    return _report(f"bundle:{path}", problems, events, len(bundles), started)
