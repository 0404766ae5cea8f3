"""Where the database is, and the three roles that use it.

- admin: a superuser of the embedded server; only used to create roles and databases.
- owner: owns every table and runs migrations (FORCE RLS applies to it too).
- app: what the app connects as; owns nothing, NOSUPERUSER, NOBYPASSRLS.

With DATABASE_URL set (Azure, CI with an external server), DATABASE_URL is the owner and
the app URL comes from ASEP_APP_DATABASE_URL or from the owner URL with the app role's name.
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from shared.config import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseUrls:
    owner: URL
    app: URL
    admin: URL | None  # only known for the embedded server

    def for_database(self, name: str) -> DatabaseUrls:
        return DatabaseUrls(
            owner=self.owner.set(database=name),
            app=self.app.set(database=name),
            admin=self.admin.set(database=name) if self.admin else None,
        )


def libpq_dsn(url: URL) -> str:
    """A SQLAlchemy URL as a libpq connection string for plain psycopg."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _running_server_url(pgdata: Path) -> URL | None:
    """The superuser URL of a server already running on `pgdata`, read from postmaster.pid.

    Going through pgserver for a running server would make every process read-modify-write
    pgserver's shared pid-list file, which is not atomic: concurrent test workers, devhost
    and CLI calls then crash on a half-written file. Only a start needs pgserver.
    """
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir, status = int(lines[0]), int(lines[3]), lines[4], lines[7].strip()
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    if status != "ready":
        return None
    return URL.create(
        "postgresql+psycopg",
        username="postgres",
        database="postgres",
        query={"host": socket_dir, "port": str(port)},
    )


def start_embedded_server(pgdata: Path) -> URL:
    """Start (or find running) the embedded PostgreSQL 16 and return its superuser URL.

    The server is left running when this process exits (`asep db stop` stops it), so that a
    killed app or test process never takes the database down with it.
    """
    running = _running_server_url(pgdata)
    if running is not None:
        return running
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (always so under CI); harmless here.
        warnings.simplefilter("ignore")
        import pgserver

    with _file_lock(pgdata.parent / "pg.lock"):
        running = _running_server_url(pgdata)  # another process may have won the race
        if running is not None:
            return running
        server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        uri: str = server.get_uri()
    return make_url(uri).set(drivername="postgresql+psycopg")


def stop_embedded_server(pgdata: Path) -> bool:
    if not (pgdata / "postmaster.pid").exists():
        return False
    import pgserver

    with _file_lock(pgdata.parent / "pg.lock"):
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        server.cleanup()
    return True


def database_urls(settings: Settings | None = None) -> DatabaseUrls:
    settings = settings or get_settings()
    if settings.database_url is not None:
        owner = make_url(settings.database_url.get_secret_value()).set(
            drivername="postgresql+psycopg"
        )
        if settings.app_database_url is not None:
            app = make_url(settings.app_database_url.get_secret_value()).set(
                drivername="postgresql+psycopg"
            )
        else:
            password = (
                settings.app_role_password.get_secret_value()
                if settings.app_role_password
                else None
            )
            app = owner.set(username=settings.app_role, password=password)
        return DatabaseUrls(owner=owner, app=app, admin=None)

    admin = start_embedded_server(settings.embedded_pgdata).set(database=settings.database_name)
    return DatabaseUrls(
        owner=admin.set(username=settings.owner_role),
        app=admin.set(username=settings.app_role),
        admin=admin,
    )


def ensure_roles_and_database(urls: DatabaseUrls, settings: Settings | None = None) -> None:
    """Create the owner and app roles and the database, when we are allowed to (embedded server).

    With an external server the operator (or Bicep) creates them; we only check they are sane.
    """
    settings = settings or get_settings()
    if urls.admin is None:
        return
    admin_dsn = libpq_dsn(urls.admin.set(database="postgres"))
    with (
        psycopg.connect(admin_dsn, autocommit=True) as conn,
        _file_lock(settings.embedded_pgdata.parent / "roles.lock"),
    ):
        existing = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
        if settings.owner_role not in existing:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE").format(
                    sql.Identifier(settings.owner_role)
                )
            )
        if settings.app_role not in existing:
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"
                ).format(sql.Identifier(settings.app_role))
            )
    create_database(
        urls.admin,
        urls.owner.database or settings.database_name,
        owner=settings.owner_role,
        app=settings.app_role,
    )


def create_database(admin_url: URL, name: str, *, owner: str, app: str) -> bool:
    """Create database `name` owned by `owner`, reachable by `app` and by nobody else."""
    with psycopg.connect(libpq_dsn(admin_url.set(database="postgres")), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    with psycopg.connect(libpq_dsn(admin_url.set(database=name)), autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(name), sql.Identifier(app)
            )
        )
        # public belongs to pg_database_owner (the owner role); nobody else may create in it.
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    return True


def drop_database(admin_url: URL, name: str) -> None:
    with psycopg.connect(libpq_dsn(admin_url.set(database="postgres")), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
