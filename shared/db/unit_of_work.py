"""The one way to open a database session: a unit of work.

A unit of work is one transaction. `tenant_unit_of_work` sets `app.tenant_id` with
`set_config(..., true)` (transaction-local, so it is safe behind transaction pooling and
resets at commit) before any statement runs; RLS does the rest. Services only flush; the
edge (HTTP call or activity) commits by leaving the `with` block without an exception.

`directory_unit_of_work` opens a transaction with no tenant set: only directory tables
(routing key -> tenant id, no customer data) are visible there, for resolving a tenant
before it is known (ARCHITECTURE.md §6).

`fetch_one` / `fetch_all` run a `text()` statement on the transaction's own driver
connection: the same transaction and tenant setting as the session, without the session's
per-statement work (result metadata, execution context), which costs more than a small
statement itself on paths that run hundreds of times a second (the send gate). Like
`execute` with a `text()` statement, they do not autoflush.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from uuid import UUID

from psycopg import pq
from sqlalchemy import Connection, Engine, Select, TextClause, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.sql.sqltypes import NullType

from shared.db.base import TenantScoped
from shared.db.engine import app_engine
from shared.errors import TenantMismatch

ModelT = TypeVar("ModelT", bound=TenantScoped)
ResultT = TypeVar("ResultT")

_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")

# A sessionmaker builds a Session subclass and its event dispatch when created: one per
# engine, not one per transaction.
_factory: tuple[Engine, sessionmaker[Session]] | None = None


def _session_factory() -> sessionmaker[Session]:
    global _factory
    engine = app_engine()
    cached = _factory
    if cached is None or cached[0] is not engine:
        cached = _factory = (
            engine,
            sessionmaker(bind=engine, expire_on_commit=False, autoflush=True),
        )
    return cached[1]


# Driver SQL of each text() statement run by fetch_one/fetch_all, compiled once. Keyed by
# id(); the statement is kept in the value so the id cannot be reused. Bounded in case a
# caller builds statements per call.
_DRIVER_SQL: dict[int, tuple[TextClause, str]] = {}
_DRIVER_SQL_MAX = 1_024


def _driver_sql(statement: TextClause, connection: Connection) -> str:
    known = _DRIVER_SQL.get(id(statement))
    if known is not None and known[0] is statement:
        return known[1]
    compiled = statement.compile(dialect=connection.dialect)
    if any(not isinstance(bind.type, NullType) for bind in compiled.binds.values()):
        # Typed parameters need SQLAlchemy's bind processing: use execute().
        raise TypeError("fetch_one/fetch_all take text() statements without typed parameters")
    if len(_DRIVER_SQL) >= _DRIVER_SQL_MAX:
        _DRIVER_SQL.clear()
    _DRIVER_SQL[id(statement)] = (statement, compiled.string)
    return compiled.string


class _DriverAccess:
    """`fetch_one` / `fetch_all` on the driver connection of the session's transaction."""

    session: Session
    _bound: tuple[SessionTransaction | None, Connection] | None = None

    def fetch_one(self, statement: TextClause, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a `text()` statement (a tuple), or None; run on the driver."""
        row = self._on_driver(statement, params, lambda cursor: cursor.fetchone())
        return cast("tuple[Any, ...] | None", row)

    def fetch_all(self, statement: TextClause, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        rows = self._on_driver(statement, params, lambda cursor: cursor.fetchall())
        return cast("list[tuple[Any, ...]]", rows)

    def _connection(self) -> Connection:
        transaction = self.session.get_transaction()
        bound = self._bound
        if bound is None or bound[0] is not transaction:
            bound = self._bound = (transaction, self.session.connection())
        return bound[1]

    def _on_driver(
        self,
        statement: TextClause,
        params: Mapping[str, Any],
        fetch: Callable[[Any], ResultT],
    ) -> ResultT:
        connection = self._connection()
        sql = _driver_sql(statement, connection)
        driver = connection.connection.driver_connection
        assert driver is not None
        try:
            return fetch(driver.execute(sql, params))
        except Exception as exc:
            dialect = connection.dialect
            if not isinstance(exc, dialect.loaded_dbapi.Error):
                raise
            # What the session would have done: the same exception classes, and on a
            # disconnect the pool's older connections marked stale (they reconnect at their
            # next checkout) and this one invalidated rather than returned to the pool.
            invalidated = bool(dialect.is_disconnect(exc, driver, None))
            if invalidated:
                connection.engine.pool._invalidate(connection.connection, exc)
                connection.invalidate(exc)
            raise DBAPIError.instance(
                sql,
                dict(params),
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=invalidated,
                dialect=dialect,
            ) from exc


class TenantUnitOfWork(_DriverAccess):
    """A transaction bound to one tenant. Repositories build their queries through it."""

    def __init__(self, session: Session, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _set_tenant(self) -> None:
        """Set `app.tenant_id` for this transaction before any other statement.

        On a connection with no transaction open yet, BEGIN and the setting go as one
        simple query: the driver would otherwise send BEGIN alone first, and every unit of
        work pays that round trip. The value is inlined; it is a UUID's canonical text.
        """
        tenant = str(UUID(str(self.tenant_id)))
        driver = self._connection().connection.driver_connection
        if (
            driver is not None
            and not driver.autocommit
            and driver.pgconn.transaction_status == pq.TransactionStatus.IDLE
        ):
            result = driver.pgconn.exec_(
                b"BEGIN; SELECT set_config('app.tenant_id', '" + tenant.encode() + b"', true)"
            )
            if result.status == pq.ExecStatus.TUPLES_OK:
                return
            if driver.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                driver.pgconn.exec_(b"ROLLBACK")
            # The driver's own path reports the failure with its usual exception.
        self.fetch_one(_SET_TENANT, {"tenant_id": tenant})

    def scoped(self, model: type[ModelT]) -> Select[ModelT]:
        """`SELECT model WHERE tenant_id = <this tenant>`; RLS enforces the same beneath it."""
        return select(model).where(model.tenant_id == self.tenant_id)

    def get(self, model: type[ModelT], object_id: UUID) -> ModelT | None:
        return self.session.scalars(self.scoped(model).where(model.id == object_id)).one_or_none()

    def add(self, instance: ModelT) -> ModelT:
        # Unset until assigned: the column default only applies at flush.
        current = cast("UUID | None", instance.tenant_id)
        if current is None:
            instance.tenant_id = self.tenant_id
        elif current != self.tenant_id:
            raise TenantMismatch()
        self.session.add(instance)
        return instance

    def flush(self) -> None:
        self.session.flush()

    def execute(
        self, statement: Any, params: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> Any:
        return self.session.execute(statement, params)


class DirectoryUnitOfWork(_DriverAccess):
    """A transaction with no tenant set: only directory tables answer."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        return self.session.execute(statement, params)


@contextmanager
def tenant_unit_of_work(tenant_id: UUID) -> Iterator[TenantUnitOfWork]:
    with _session_factory().begin() as session:
        uow = TenantUnitOfWork(session, tenant_id)
        uow._set_tenant()
        yield uow


@contextmanager
def directory_unit_of_work() -> Iterator[DirectoryUnitOfWork]:
    with _session_factory().begin() as session:
        yield DirectoryUnitOfWork(session)


def ping_database() -> None:
    """Raises if the app role cannot run a statement."""
    with app_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
