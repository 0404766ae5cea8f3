"""The one way to open a database session: a unit of work.

A unit of work is one transaction. `tenant_unit_of_work` sets `app.tenant_id` with
`set_config(..., true)` (transaction-local, so it is safe behind transaction pooling and
resets at commit) before any statement runs; RLS does the rest. Services only flush; the
edge (HTTP call or activity) commits by leaving the `with` block without an exception.

`directory_unit_of_work` opens a transaction with no tenant set: only directory tables
(routing key -> tenant id, no customer data) are visible there, for resolving a tenant
before it is known (ARCHITECTURE.md §6).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session, sessionmaker

from shared.db.base import TenantScoped
from shared.db.engine import app_engine
from shared.errors import TenantMismatch

ModelT = TypeVar("ModelT", bound=TenantScoped)

_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")


def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=app_engine(), expire_on_commit=False, autoflush=True)


class TenantUnitOfWork:
    """A transaction bound to one tenant. Repositories build their queries through it."""

    def __init__(self, session: Session, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

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


class DirectoryUnitOfWork:
    """A transaction with no tenant set: only directory tables answer."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        return self.session.execute(statement, params)


@contextmanager
def tenant_unit_of_work(tenant_id: UUID) -> Iterator[TenantUnitOfWork]:
    with _session_factory().begin() as session:
        session.execute(_SET_TENANT, {"tenant_id": str(tenant_id)})
        yield TenantUnitOfWork(session, tenant_id)


@contextmanager
def directory_unit_of_work() -> Iterator[DirectoryUnitOfWork]:
    with _session_factory().begin() as session:
        yield DirectoryUnitOfWork(session)


def ping_database() -> None:
    """Raises if the app role cannot run a statement."""
    with app_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
