"""`python -m devhost [--app-dir DIR] [--port 7071] [--host 127.0.0.1] [--database-url URL]`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from devhost.host import DevHost

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_database_dsn() -> str:
    """The embedded database's owner role, database `asep` (shared.db.server)."""
    from shared.db.server import database_urls, ensure_roles_and_database, libpq_dsn

    urls = database_urls()
    ensure_roles_and_database(urls)
    return libpq_dsn(urls.owner)


def to_libpq(url: str) -> str:
    # Accept SQLAlchemy-style URLs too (postgresql+psycopg://...).
    if url.startswith("postgresql+"):
        return "postgresql" + url[url.index("://") :]
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devhost", description=__doc__)
    parser.add_argument(
        "--app-dir", type=Path, default=Path(os.environ.get("DEVHOST_APP_DIR", REPO_ROOT))
    )
    parser.add_argument("--host", default=os.environ.get("DEVHOST_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEVHOST_PORT", "7071")))
    parser.add_argument("--database-url", default=os.environ.get("DEVHOST_DATABASE_URL"))
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="fallback polling interval")
    parser.add_argument("--log-level", default=os.environ.get("DEVHOST_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    dsn = to_libpq(args.database_url) if args.database_url else default_database_dsn()
    host = DevHost(
        args.app_dir, dsn, host=args.host, port=args.port, poll_seconds=args.poll_seconds
    )
    config = uvicorn.Config(
        host,
        host=args.host,
        port=args.port,
        lifespan="on",
        log_level=args.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
