"""SQL for one audit chain: a tenant's (inside its unit of work) or the platform's.

Both kinds of chain share table shapes, so one store serves both; the tenant store adds
`tenant_id = <this tenant>` to every statement (RLS enforces the same beneath it) and the
platform store runs in a directory unit of work, where the platform tables' policy admits it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    TextClause,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.audit.model import ChainRecord, RecordTemplate, format_timestamp, load_canonical
from shared.audit.orm import (
    AuditCheckpoint,
    AuditEvent,
    AuditHead,
    PlatformAuditCheckpoint,
    PlatformAuditEvent,
    PlatformAuditHead,
)
from shared.db.unit_of_work import DirectoryUnitOfWork, TenantUnitOfWork

PLATFORM_SCOPE = "platform"
ACTOR_CACHE = 1_024
# format_timestamp's format in PostgreSQL's to_char terms.
PG_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


@dataclass(frozen=True)
class _WriteSql:
    insert: TextClause
    move_head: TextClause
    append_one: TextClause


@lru_cache(maxsize=16)
def _append_one_sql(
    events: str, head: str, *, tenant: bool, ctes: str = "", returning: str = ""
) -> TextClause:
    mine = "tenant_id = :tenant_id" if tenant else "id = 1"
    columns = ("tenant_id, " if tenant else "") + ", ".join(EVENT_COLUMNS)
    return text(
        f"""
        WITH locked AS (
            SELECT seq, hash, greatest(CAST(:now AS timestamptz), last_created_at) AS at
            FROM {head} WHERE {mine} FOR UPDATE
        ), sealed AS (
            SELECT seq + 1 AS seq, hash AS prev_hash, at, encode(sha256(convert_to(
                :before_time || to_char(at AT TIME ZONE 'UTC', '{PG_TIMESTAMP_FORMAT}')
                || :before_prev || hash || :before_seq || (seq + 1)::text || :end, 'UTF8'
            )), 'hex') AS hash
            FROM locked
        ), appended AS (
            INSERT INTO {events} ({columns})
            SELECT {":tenant_id, " if tenant else ""}seq, CAST(:actor AS jsonb), :event_type,
                   CAST(:event_json AS jsonb), :correlation_id, :idempotency_key,
                   :payload_hash, prev_hash, hash, at
            FROM sealed
            RETURNING seq, prev_hash, hash, created_at
        ){f", {ctes}" if ctes else ""}
        UPDATE {head} SET seq = appended.seq, hash = appended.hash,
                          last_created_at = appended.created_at
        FROM appended WHERE {head}.{mine}
        RETURNING appended.seq, appended.prev_hash, appended.hash, appended.created_at
                  {f", {returning}" if returning else ""}
        """
    )


@dataclass(frozen=True)
class _ReadSql:
    bounded: TextClause
    unbounded: TextClause


@lru_cache(maxsize=4)
def _read_sql(events: str, *, tenant: bool) -> _ReadSql:
    select_sql = (
        "SELECT seq, actor::text, event_type, event_json::text, correlation_id, "
        "idempotency_key, payload_hash, prev_hash, hash, "
        f"to_char(created_at AT TIME ZONE 'UTC', '{PG_TIMESTAMP_FORMAT}') "
        f"FROM {events} WHERE {'tenant_id = :tenant_id AND ' if tenant else ''}seq >= :first"
    )
    return _ReadSql(
        bounded=text(f"{select_sql} AND seq <= :last ORDER BY seq"),
        unbounded=text(f"{select_sql} ORDER BY seq"),
    )


@lru_cache(maxsize=4)
def _write_sql(events: str, head: str, *, tenant: bool) -> _WriteSql:
    columns = ("tenant_id", *EVENT_COLUMNS) if tenant else EVENT_COLUMNS
    values = ", ".join(
        f"CAST(:{c} AS jsonb)" if c in ("actor", "event_json") else f":{c}" for c in columns
    )
    insert_sql = f"INSERT INTO {events} ({', '.join(columns)}) VALUES ({values})"
    mine = "tenant_id = :tenant_id" if tenant else "id = 1"
    move_sql = (
        f"UPDATE {head} SET seq = :head_seq, hash = :head_hash, last_created_at = :head_time "
        f"WHERE {mine} AND seq = :expected"
    )
    return _WriteSql(
        insert=text(insert_sql),
        move_head=text(move_sql),
        append_one=text(f"WITH appended AS ({insert_sql}) {move_sql}"),
    )


@dataclass(frozen=True)
class Companion:
    """Writes that belong with one audit event and are made by the event's own statement:
    `ctes`, one or more named data-modifying CTEs (`name AS (...)`, comma-separated) that
    may select from `appended` (the inserted event: seq, prev_hash, hash, created_at); their
    parameters (names other than the append's; `:tenant_id` is shared); and `returning`,
    expressions over those CTEs the statement also returns. A CTE that must not write when
    no event is inserted (the chain's first append retries after creating its head) has to
    depend on `appended`. Saves the round trips separate statements would take while the
    head lock is held."""

    ctes: str
    params: dict[str, Any]
    returning: str = ""

    def __add__(self, other: Companion) -> Companion:
        clash = (self.params.keys() & other.params.keys()) - {"tenant_id"}
        if clash:
            raise ValueError(f"companion parameters clash: {clash}")
        return Companion(
            ctes=f"{self.ctes}, {other.ctes}",
            params={**self.params, **other.params},
            returning=", ".join(r for r in (self.returning, other.returning) if r),
        )


class Executes(Protocol):
    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any: ...

    def fetch_one(
        self, statement: TextClause, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None: ...


@dataclass(frozen=True, slots=True)
class HeadState:
    seq: int
    hash: str
    last_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    number: int
    first_seq: int
    tree_size: int
    root: str
    frontier: list[str]
    statement: dict[str, Any]
    key_id: str
    signature: str
    bundle_path: str | None
    exported_at: datetime | None


EVENT_COLUMNS = (
    "seq",
    "actor",
    "event_type",
    "event_json",
    "correlation_id",
    "idempotency_key",
    "payload_hash",
    "prev_hash",
    "hash",
    "created_at",
)


class ChainStore:
    def __init__(
        self,
        executor: Executes,
        *,
        tenant_id: uuid.UUID | None,
        events: Table,
        head: Table,
        checkpoints: Table,
    ) -> None:
        self._db = executor
        self.tenant_id = tenant_id
        self.events = events
        self.head = head
        self.checkpoints = checkpoints

    @classmethod
    def for_tenant(cls, uow: TenantUnitOfWork) -> ChainStore:
        return cls(
            uow,
            tenant_id=uow.tenant_id,
            events=AuditEvent.__table__,  # type: ignore[arg-type]
            head=AuditHead.__table__,  # type: ignore[arg-type]
            checkpoints=AuditCheckpoint.__table__,  # type: ignore[arg-type]
        )

    @classmethod
    def for_platform(cls, duow: DirectoryUnitOfWork) -> ChainStore:
        return cls(
            duow,
            tenant_id=None,
            events=PlatformAuditEvent.__table__,  # type: ignore[arg-type]
            head=PlatformAuditHead.__table__,  # type: ignore[arg-type]
            checkpoints=PlatformAuditCheckpoint.__table__,  # type: ignore[arg-type]
        )

    @property
    def scope(self) -> str:
        return f"tenant:{self.tenant_id}" if self.tenant_id is not None else PLATFORM_SCOPE

    def _mine(self, table: Table) -> ColumnElement[bool]:
        if self.tenant_id is None:
            return true()
        return table.c.tenant_id == self.tenant_id

    # --- head -------------------------------------------------------------------------

    def _head_select(self) -> Select[Any]:
        h = self.head
        return select(h.c.seq, h.c.hash, h.c.last_created_at).where(self._mine(h))

    def lock_head(self) -> HeadState:
        """Lock this chain's head row until the transaction ends (creating it on first use)."""
        row = self._db.execute(self._head_select().with_for_update()).one_or_none()
        if row is None:
            if self.tenant_id is None:
                raise RuntimeError("the platform audit head row is missing (migration 0002)")
            self._db.execute(
                pg_insert(self.head).values(tenant_id=self.tenant_id).on_conflict_do_nothing()
            )
            row = self._db.execute(self._head_select().with_for_update()).one()
        return HeadState(row.seq, row.hash, row.last_created_at)

    def read_head(self) -> HeadState | None:
        row = self._db.execute(self._head_select()).one_or_none()
        return HeadState(row.seq, row.hash, row.last_created_at) if row is not None else None

    # --- events -----------------------------------------------------------------------

    def _params(self, record: ChainRecord, created_at: datetime) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "seq": record.seq,
            "actor": json.dumps(record.actor),
            "event_type": record.event_type,
            "event_json": (
                record.canonical_payload.decode()
                if record.canonical_payload is not None
                else json.dumps(record.event_json)
            ),
            "correlation_id": record.correlation_id,
            "idempotency_key": record.idempotency_key,
            "payload_hash": record.payload_hash,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
            "created_at": created_at,
        }

    def write(
        self,
        records: Sequence[tuple[ChainRecord, datetime]],
        *,
        expected_head_seq: int,
    ) -> None:
        """Insert sealed records and move the head past them (one round trip for one record).

        Plain SQL with bound parameters: this runs while the head lock is held, and building
        SQLAlchemy constructs per call cost more than the statement itself.
        """
        sql = _write_sql(self.events.name, self.head.name, tenant=self.tenant_id is not None)
        last, last_time = records[-1]
        head = {
            "tenant_id": self.tenant_id,
            "head_seq": last.seq,
            "head_hash": last.hash,
            "head_time": last_time,
            "expected": expected_head_seq,
        }
        if len(records) == 1:
            record, created_at = records[0]
            moved = self._db.execute(sql.append_one, {**self._params(record, created_at), **head})
        else:
            self._db.execute(sql.insert, [self._params(r, t) for r, t in records])  # type: ignore[arg-type]
            moved = self._db.execute(sql.move_head, head)
        if moved.rowcount != 1:
            raise RuntimeError(f"audit head of {self.scope} moved under a held lock")

    def append_sealed_in_database(
        self,
        template: RecordTemplate,
        params: dict[str, Any],
        now: datetime,
        companion: Companion | None = None,
    ) -> tuple[int, str, str, datetime, tuple[Any, ...]]:
        """Lock the head, hash, insert and move the head in one statement: (seq, prev, hash,
        at, the companion's `returning` values).

        The lock is held from here to commit, so nothing but this statement runs under it.
        A `companion`'s writes run in the same statement (see `Companion`).
        """
        sql = _append_one_sql(
            self.events.name,
            self.head.name,
            tenant=self.tenant_id is not None,
            ctes=companion.ctes if companion is not None else "",
            returning=companion.returning if companion is not None else "",
        )
        values = {
            **params,
            "tenant_id": self.tenant_id,
            "now": now,
            "before_time": template.before_time,
            "before_prev": template.before_prev,
            "before_seq": template.before_seq,
            "end": template.end,
            "payload_hash": template.payload_hash,
            "event_json": template.canonical_payload.decode(),
        }
        if companion is not None:
            clash = (values.keys() & companion.params.keys()) - {"tenant_id"}
            if clash or companion.params.get("tenant_id", self.tenant_id) != self.tenant_id:
                raise ValueError(f"companion parameters clash with the append's: {clash}")
            values |= companion.params
        # On the driver connection: this statement runs once per audited action.
        row = self._db.fetch_one(sql, values)
        if row is None:  # the chain's first event: create its head, then append
            self.lock_head()
            row = self._db.fetch_one(sql, values)
            assert row is not None
        return row[0], row[1], row[2], row[3], tuple(row[4:])

    def to_record(self, row: Row[Any] | Any) -> ChainRecord:
        return ChainRecord(
            tenant_id=str(self.tenant_id) if self.tenant_id is not None else None,
            seq=row.seq,
            actor=row.actor,
            event_type=row.event_type,
            event_json=row.event_json,
            correlation_id=row.correlation_id,
            idempotency_key=row.idempotency_key,
            payload_hash=row.payload_hash,
            prev_hash=row.prev_hash,
            created_at=format_timestamp(row.created_at),
            hash=row.hash,
        )

    def _event_select(self) -> Select[Any]:
        e = self.events
        return select(*(e.c[name] for name in EVENT_COLUMNS)).where(self._mine(e))

    def records(
        self, *, first_seq: int = 1, last_seq: int | None = None, batch: int = 5_000
    ) -> Iterator[ChainRecord]:
        """Stored records with first_seq <= seq <= last_seq in seq order, streamed.

        The verifier reads millions of these, so the JSON comes as text and is parsed and
        canonicalized once here, and PostgreSQL formats the timestamp.
        """
        sql = _read_sql(self.events.name, tenant=self.tenant_id is not None)
        params = {"tenant_id": self.tenant_id, "first": first_seq, "last": last_seq}
        statement = sql.bounded if last_seq is not None else sql.unbounded
        result = self._db.execute(statement.execution_options(yield_per=batch), params)
        tenant = str(self.tenant_id) if self.tenant_id is not None else None
        # The same few actors write most events: parse each one's JSON once.
        actors: dict[str, tuple[Any, bytes]] = {}
        for (
            seq,
            actor,
            event_type,
            event_json,
            correlation,
            idempotency,
            payload,
            prev,
            digest,
            at,
        ) in result:
            known = actors.get(actor)
            if known is None:
                if len(actors) >= ACTOR_CACHE:
                    actors.clear()
                known = actors[actor] = load_canonical(actor)
            actor_value, actor_bytes = known
            event_value, event_bytes = load_canonical(event_json)
            record = ChainRecord(
                tenant_id=tenant,
                seq=seq,
                actor=actor_value,
                event_type=event_type,
                event_json=event_value,
                correlation_id=correlation,
                idempotency_key=idempotency,
                payload_hash=payload,
                prev_hash=prev,
                created_at=at,
                hash=digest,
            )
            record.remember_canonical(event_bytes, actor_bytes)
            yield record

    def record_at(self, seq: int) -> ChainRecord | None:
        row = self._db.execute(self._event_select().where(self.events.c.seq == seq)).one_or_none()
        return self.to_record(row) if row is not None else None

    def page(
        self,
        *,
        after_seq: int,
        limit: int,
        event_type: str | None = None,
        actor_id: str | None = None,
        correlation_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ChainRecord]:
        e = self.events
        statement = self._event_select().where(e.c.seq > after_seq)
        if event_type is not None:
            statement = statement.where(e.c.event_type == event_type)
        if actor_id is not None:
            statement = statement.where(e.c.actor["id"].astext == actor_id)
        if correlation_id is not None:
            statement = statement.where(e.c.correlation_id == correlation_id)
        if since is not None:
            statement = statement.where(e.c.created_at >= since)
        if until is not None:
            statement = statement.where(e.c.created_at < until)
        rows = self._db.execute(statement.order_by(e.c.seq).limit(limit)).all()
        return [self.to_record(row) for row in rows]

    # --- checkpoints --------------------------------------------------------------------

    def _checkpoint(self, row: Any) -> CheckpointRow:
        return CheckpointRow(
            number=row.number,
            first_seq=row.first_seq,
            tree_size=row.tree_size,
            root=row.root,
            frontier=list(row.frontier),
            statement=dict(row.statement),
            key_id=row.key_id,
            signature=row.signature,
            bundle_path=row.bundle_path,
            exported_at=row.exported_at,
        )

    def checkpoints_list(self) -> list[CheckpointRow]:
        c = self.checkpoints
        rows = self._db.execute(select(c).where(self._mine(c)).order_by(c.c.number)).all()
        return [self._checkpoint(row) for row in rows]

    def last_checkpoint(self) -> CheckpointRow | None:
        c = self.checkpoints
        row = self._db.execute(
            select(c).where(self._mine(c)).order_by(c.c.number.desc()).limit(1)
        ).one_or_none()
        return self._checkpoint(row) if row is not None else None

    def checkpoint(self, number: int) -> CheckpointRow | None:
        c = self.checkpoints
        row = self._db.execute(select(c).where(self._mine(c), c.c.number == number)).one_or_none()
        return self._checkpoint(row) if row is not None else None

    def unexported_checkpoints(self, limit: int) -> list[CheckpointRow]:
        c = self.checkpoints
        rows = self._db.execute(
            select(c)
            .where(self._mine(c), c.c.exported_at.is_(None))
            .order_by(c.c.number)
            .limit(limit)
        ).all()
        return [self._checkpoint(row) for row in rows]

    def add_checkpoint(self, checkpoint: CheckpointRow) -> None:
        values: dict[str, Any] = {
            "number": checkpoint.number,
            "first_seq": checkpoint.first_seq,
            "tree_size": checkpoint.tree_size,
            "root": checkpoint.root,
            "frontier": checkpoint.frontier,
            "statement": checkpoint.statement,
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
        }
        if self.tenant_id is not None:
            values["tenant_id"] = self.tenant_id
        self._db.execute(insert(self.checkpoints).values(values))

    def mark_exported(self, number: int, bundle_path: str, at: datetime) -> None:
        c = self.checkpoints
        self._db.execute(
            update(c)
            .where(self._mine(c), c.c.number == number, c.c.exported_at.is_(None))
            .values(bundle_path=bundle_path, exported_at=at)
        )
