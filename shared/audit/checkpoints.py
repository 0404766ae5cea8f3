"""Signed checkpoints of every audit chain, exported to Blob as bundles.

`run_checkpoints()` is what the timer trigger calls. Per chain (each tenant's, then the
platform's), in its own transaction: check the events since the last checkpoint (a broken
chain is never signed), extend the stored Merkle frontier with them, sign the new root and
store the checkpoint. Then, in a later transaction, every checkpoint not yet exported is
written to Blob as a bundle and marked exported; a failed upload is retried on the next run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

from azure.core.exceptions import AzureError
from sqlalchemy.exc import SQLAlchemyError

from shared.audit.bundle import MANIFEST_FILE, Bundle, build_bundle, bundle_prefix
from shared.audit.model import (
    GENESIS_HASH,
    MerkleFrontier,
    canonical_json,
    check_segment,
    checkpoint_statement,
    previous_link,
)
from shared.audit.repository import PLATFORM_SCOPE, ChainStore, CheckpointRow
from shared.audit.schemas import CheckpointOutcome, CheckpointRunSummary
from shared.audit.signing import CheckpointSigner, b64url, signer_from_settings
from shared.db.directory import all_tenant_ids
from shared.db.unit_of_work import directory_unit_of_work, tenant_unit_of_work
from shared.storage.blob import BlobExists, BlobStore, blob_store

log = logging.getLogger(__name__)

# Bounds the memory and transaction length of one checkpoint; a larger backlog gets several.
MAX_EVENTS_PER_CHECKPOINT = 100_000
EXPORTS_PER_RUN = 50

ChainOpener = Callable[[], AbstractContextManager[ChainStore]]
Clock = Callable[[], datetime]


class ExportConflict(Exception):
    """A bundle blob exists with other content than the database says it should have."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def tenant_chain(tenant_id: uuid.UUID) -> ChainOpener:
    @contextmanager
    def open_chain() -> Iterator[ChainStore]:
        with tenant_unit_of_work(tenant_id) as uow:
            yield ChainStore.for_tenant(uow)

    return open_chain


@contextmanager
def platform_chain() -> Iterator[ChainStore]:
    with directory_unit_of_work() as duow:
        yield ChainStore.for_platform(duow)


def checkpoint_chain(
    open_chain: ChainOpener, signer: CheckpointSigner, clock: Clock = _utc_now
) -> CheckpointOutcome:
    """Sign the next checkpoint of one chain, if it has events past the last one."""
    with open_chain() as chain:
        scope = chain.scope
        head = chain.read_head()
        last = chain.last_checkpoint()
        done = last.tree_size if last is not None else 0
        if head is None or head.seq <= done:
            return CheckpointOutcome(scope=scope, status="unchanged", tree_size=done)
        upto = min(head.seq, done + MAX_EVENTS_PER_CHECKPOINT)
        if last is not None:
            frontier = MerkleFrontier(last.tree_size, [bytes.fromhex(n) for n in last.frontier])
            if frontier.root().hex() != last.root or last.statement.get("root") != last.root:
                return CheckpointOutcome(
                    scope=scope,
                    status="refused",
                    detail=f"checkpoint {last.number}: stored frontier or root was altered",
                )
            prev_hash: str = last.statement["last_hash"]
            prev_time: str | None = last.statement["last_created_at"]
        else:
            frontier, prev_hash, prev_time = MerkleFrontier(), GENESIS_HASH, None
        segment = check_segment(
            chain.records(first_seq=done + 1, last_seq=upto),
            first_seq=done + 1,
            prev_hash=prev_hash,
            prev_created_at=prev_time,
            last_seq=upto,
        )
        if segment.problem is not None or segment.last is None:
            problem = segment.problem
            detail = f"seq {problem.seq}: {problem.detail}" if problem else "no events read"
            log.error("audit chain %s not checkpointed: %s", scope, detail)
            return CheckpointOutcome(scope=scope, status="refused", detail=detail)
        frontier.extend(segment.leaves)
        number = last.number + 1 if last is not None else 1
        statement = checkpoint_statement(
            scope=scope,
            number=number,
            tree_size=upto,
            first_seq=done + 1,
            root=frontier.root(),
            last_hash=segment.last.hash,
            last_created_at=segment.last.created_at,
            previous=previous_link(last.statement) if last is not None else None,
            key_id=signer.key_id,
            created_at=clock(),
        )
        signature = b64url(signer.sign(canonical_json(statement)))
        chain.add_checkpoint(
            CheckpointRow(
                number=number,
                first_seq=done + 1,
                tree_size=upto,
                root=statement["root"],
                frontier=[node.hex() for node in frontier.nodes],
                statement=statement,
                key_id=signer.key_id,
                signature=signature,
                bundle_path=None,
                exported_at=None,
            )
        )
    return CheckpointOutcome(scope=scope, status="created", number=number, tree_size=upto)


def bundle_for(chain: ChainStore, checkpoint: CheckpointRow) -> Bundle:
    """Rebuild a checkpoint's bundle from the database (deterministic: same bytes each time)."""
    previous = chain.checkpoint(checkpoint.number - 1) if checkpoint.number > 1 else None
    return build_bundle(
        statement=checkpoint.statement,
        signature=checkpoint.signature,
        key_id=checkpoint.key_id,
        previous_frontier=previous.frontier if previous is not None else [],
        records=chain.records(first_seq=checkpoint.first_seq, last_seq=checkpoint.tree_size),
    )


def upload_bundle(store: BlobStore, prefix: str, bundle: Bundle) -> None:
    """Write the events first and the manifest last: a manifest means a complete bundle."""
    files = bundle.files()
    for name in sorted(files, key=lambda n: n == MANIFEST_FILE):
        blob_name = f"{prefix}/{name}"
        try:
            store.put(
                blob_name,
                files[name],
                content_type="application/json" if name == MANIFEST_FILE else "application/jsonl",
            )
        except BlobExists:
            if store.get(blob_name) != files[name]:
                raise ExportConflict(blob_name) from None


def export_pending(open_chain: ChainOpener, store: BlobStore, clock: Clock = _utc_now) -> int:
    with open_chain() as chain:
        exported = 0
        for checkpoint in chain.unexported_checkpoints(EXPORTS_PER_RUN):
            prefix = bundle_prefix(chain.scope, checkpoint.number)
            upload_bundle(store, prefix, bundle_for(chain, checkpoint))
            chain.mark_exported(checkpoint.number, prefix, clock())
            exported += 1
        return exported


def _checkpoint_and_export(
    scope: str, open_chain: ChainOpener, signer: CheckpointSigner, store: BlobStore, clock: Clock
) -> tuple[list[CheckpointOutcome], int]:
    outcomes: list[CheckpointOutcome] = []
    exported = 0
    try:
        while True:
            outcome = checkpoint_chain(open_chain, signer, clock)
            outcomes.append(outcome)
            if outcome.status != "created":
                break
        exported = export_pending(open_chain, store, clock)
    except (SQLAlchemyError, AzureError, ExportConflict, OSError) as exc:
        # One chain's failure (a concurrent run, an unreachable store) must not stop the rest.
        log.exception("audit checkpoint of %s failed", scope)
        outcomes.append(CheckpointOutcome(scope=scope, status="failed", detail=type(exc).__name__))
    return outcomes, exported


def run_checkpoints(
    *,
    signer: CheckpointSigner | None = None,
    store: BlobStore | None = None,
    clock: Clock = _utc_now,
) -> CheckpointRunSummary:
    """Checkpoint and export every tenant's chain and the platform chain (timer entry point)."""
    signer = signer or signer_from_settings()
    store = store or blob_store()
    with directory_unit_of_work() as duow:
        tenant_ids = list(all_tenant_ids(duow))
    openers: list[tuple[str, ChainOpener]] = [
        (f"tenant:{tenant_id}", tenant_chain(tenant_id)) for tenant_id in tenant_ids
    ]
    openers.append((PLATFORM_SCOPE, platform_chain))
    outcomes: list[CheckpointOutcome] = []
    exported = 0
    for scope, open_chain in openers:
        chain_outcomes, chain_exported = _checkpoint_and_export(
            scope, open_chain, signer, store, clock
        )
        # Only the last outcome per chain says where it ended; earlier ones are "created".
        outcomes.extend(
            o for o in chain_outcomes if o.status != "unchanged" or len(chain_outcomes) == 1
        )
        exported += chain_exported
    summary = CheckpointRunSummary(
        outcomes=outcomes,
        created=sum(o.status == "created" for o in outcomes),
        unchanged=sum(o.status == "unchanged" for o in outcomes),
        failed=sum(o.status in ("failed", "refused") for o in outcomes),
        exported=exported,
    )
    log.info(
        "audit checkpoints: %d created, %d unchanged, %d failed, %d bundles exported",
        summary.created,
        summary.unchanged,
        summary.failed,
        summary.exported,
    )
    return summary
