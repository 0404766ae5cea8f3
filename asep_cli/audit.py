"""`asep audit ...`: verify chains or downloaded bundles, and run checkpoints by hand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.audit.checkpoints import run_checkpoints
from shared.audit.schemas import VerificationReport
from shared.audit.signing import trusted_keys
from shared.audit.verify import verify_bundle_path, verify_platform, verify_tenant
from shared.db.directory import all_tenant_ids
from shared.db.unit_of_work import directory_unit_of_work
from shared.identity.service import find_tenant_id


def _print(report: VerificationReport) -> None:
    status = "ok" if report.ok else f"FAILED at seq {report.first_bad_seq}"
    print(
        f"{report.scope}: {status} ({report.events_checked} events, "
        f"{report.checkpoints_checked} checkpoints, {report.seconds:.2f}s)",
        file=sys.stderr,
    )
    for problem in report.problems:
        print(f"  seq {problem.seq}: {problem.kind}: {problem.detail}", file=sys.stderr)


def _verify(args: argparse.Namespace) -> int:
    keys = trusted_keys()
    reports: list[VerificationReport] = []
    if args.bundle is not None:
        reports.append(verify_bundle_path(args.bundle, keys))
    elif args.tenant is not None:
        tenant_id = find_tenant_id(args.tenant)
        if tenant_id is None:
            print(f"no tenant with slug '{args.tenant}'", file=sys.stderr)
            return 2
        reports.append(verify_tenant(tenant_id, keys))
    else:
        with directory_unit_of_work() as duow:
            tenant_ids = list(all_tenant_ids(duow))
        reports.extend(verify_tenant(tenant_id, keys) for tenant_id in tenant_ids)
        reports.append(verify_platform(keys))
    for report in reports:
        _print(report)
    print(json.dumps([report.model_dump(mode="json") for report in reports], indent=2))
    return 0 if all(report.ok for report in reports) else 1


def _checkpoint(_: argparse.Namespace) -> int:
    summary = run_checkpoints()
    print(summary.model_dump_json(indent=2))
    return 0 if summary.failed == 0 else 1


def add_audit_commands(commands: Any) -> None:
    """Register `audit verify` and `audit checkpoint` on the CLI's sub-command set."""
    audit = commands.add_parser("audit", help="audit log: verify, checkpoint")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="recompute hashes, links, checkpoints; exit 1 naming the first bad seq"
    )
    target = verify.add_mutually_exclusive_group()
    target.add_argument("--tenant", metavar="SLUG", help="one tenant (default: all + platform)")
    target.add_argument("--bundle", metavar="PATH", type=Path, help="a downloaded bundle dir")
    verify.set_defaults(handler=_verify)
    audit_commands.add_parser(
        "checkpoint", help="sign new events of every chain and export bundles now"
    ).set_defaults(handler=_checkpoint)
