"""`asep`: the operator's command line (inside the venv)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from asep_cli.audit import add_audit_commands
from asep_cli.demo import main as demo_main
from asep_cli.replies import add_replies_commands
from shared.config import REPO_ROOT, get_settings
from shared.db.migrate import upgrade_to_head
from shared.db.server import (
    database_urls,
    ensure_roles_and_database,
    stop_embedded_server,
)
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.permissions import permissions_markdown
from shared.identity.schemas import TenantCreate
from shared.identity.service import ensure_tenant
from shared.telemetry.logging import configure_logging


def _db_url(args: argparse.Namespace) -> int:
    urls = database_urls()
    url = urls.owner if args.owner else urls.app
    print(url.render_as_string(hide_password=False))
    return 0


def _db_start(_: argparse.Namespace) -> int:
    urls = database_urls()
    ensure_roles_and_database(urls)
    print(urls.app.render_as_string(hide_password=True))
    return 0


def _db_stop(_: argparse.Namespace) -> int:
    settings = get_settings()
    if not settings.uses_embedded_database:
        print("DATABASE_URL is set: the database is not ours to stop.", file=sys.stderr)
        return 1
    stopped = stop_embedded_server(settings.embedded_pgdata)
    print("stopped" if stopped else "not running")
    return 0


def _db_migrate(_: argparse.Namespace) -> int:
    urls = database_urls()
    ensure_roles_and_database(urls)
    upgrade_to_head(urls.owner)
    print("migrated to head")
    return 0


def _seed(_: argparse.Namespace) -> int:
    settings = get_settings()
    tenant = ensure_tenant(TenantCreate(slug=settings.demo_tenant_slug, name="Demo Tenant"))
    for role in Role:
        dev_issuer.ensure_dev_tenant_login(tenant.slug, role)
    print(
        json.dumps({"tenant": tenant.model_dump(mode="json"), "dev_users": [r.value for r in Role]})
    )
    return 0


def _token(args: argparse.Namespace) -> int:
    if args.platform:
        print(dev_issuer.platform_token(args.ttl))
    else:
        print(dev_issuer.dev_token(args.tenant, Role(args.role), args.ttl))
    return 0


def _demo(args: argparse.Namespace) -> int:
    return demo_main(args.url)


def _permissions_doc(_: argparse.Namespace) -> int:
    sys.stdout.write(permissions_markdown())
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Serve function_app.py through devhost: HTTP, Durable orchestrations, queues, timers."""
    from devhost.__main__ import main as devhost_main

    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    return devhost_main(["--app-dir", str(REPO_ROOT), "--host", host, "--port", str(port)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asep", description="ShaunAI ASEP operator commands")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database: url, start, stop, migrate")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    url = db_commands.add_parser("url", help="print the app role's connection URL")
    url.add_argument("--owner", action="store_true", help="the owner (migration) role instead")
    url.set_defaults(handler=_db_url)
    db_commands.add_parser("start", help="start the embedded PostgreSQL").set_defaults(
        handler=_db_start
    )
    db_commands.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(
        handler=_db_stop
    )
    db_commands.add_parser("migrate", help="apply migrations as the owner role").set_defaults(
        handler=_db_migrate
    )

    commands.add_parser("seed", help="create the demo tenant if missing").set_defaults(
        handler=_seed
    )

    token = commands.add_parser("token", help="print a dev bearer token (ASEP_ENV local/test only)")
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="tenant slug")
    who.add_argument("--platform", action="store_true", help="the dev platform operator")
    token.add_argument("--role", choices=[role.value for role in Role], default=Role.ADMIN.value)
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    token.set_defaults(handler=_token)

    permissions = commands.add_parser("permissions", help="the permission matrix")
    permissions_commands = permissions.add_subparsers(dest="permissions_command", required=True)
    permissions_commands.add_parser("doc", help="print docs/permissions.md").set_defaults(
        handler=_permissions_doc
    )

    add_audit_commands(commands)
    add_replies_commands(commands)

    demo = commands.add_parser("demo", help="run a whole demo campaign on the embedded default")
    demo.add_argument("--url", help="a running devhost (default: start one)")
    demo.set_defaults(handler=_demo)

    serve = commands.add_parser("serve", help="serve function_app.py through devhost")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging(get_settings().log_level)
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
