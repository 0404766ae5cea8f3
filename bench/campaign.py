"""Campaign pipeline benchmarks. Prints JSON.

    .venv/bin/python bench/campaign.py [--rows 100000]

csv_import: rows/s for the full import (streamed decoding, header mapping, address
validation with email-validator, in-file dedupe, companies by domain, suppression check,
INSERT ... SELECT ... ON CONFLICT from one JSON document per 5,000-row batch under RLS, one
audit event, all in one transaction), beside PostgreSQL COPY of the
same rows into a plain table with the same columns in the same database (the ratio says how
much of raw load speed the validated path keeps). The file has 5% invalid and 5% duplicate
rows. Goal: >= 10,000 rows/s. reimport_same_file: the same file again into the same tenant
(everything already present: nothing may change).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from shared.audit.schemas import Actor, ActorType
from shared.config import get_settings
from shared.db.engine import reset_engines
from shared.db.migrate import upgrade_to_head
from shared.db.server import (
    create_database,
    database_urls,
    drop_database,
    ensure_roles_and_database,
    libpq_dsn,
)
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability.suppression import suppressed_addresses
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant
from shared.prospects.csv_stream import CsvStream
from shared.prospects.service import import_prospects

BENCH_DATABASE = "asep_bench_campaign"


def write_csv(path: Path, rows: int, rng: random.Random) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,first_name,last_name,title,company,website\n")
        for n in range(rows):
            kind = rng.random()
            if kind < 0.05:
                handle.write(f"broken-address-{n},Bad,Row,CTO,Nowhere,\n")
            elif kind < 0.10 and n > 0:
                handle.write(f"person{n - 1}@company{(n - 1) % 5000}.example,Dup,Row,CTO,Co,\n")
            else:
                company = n % 5000
                handle.write(
                    f"person{n}@company{company}.example,First{n},Last{n},VP Sales,"
                    f"Company {company},https://www.company{company}.example/\n"
                )


def _import(tenant_id: uuid.UUID, path: Path) -> dict[str, float]:
    actor = Actor(type=ActorType.SYSTEM, id="bench")
    started = time.perf_counter()
    with path.open("rb") as handle, tenant_unit_of_work(tenant_id) as uow:
        stream = CsvStream(iter(lambda: handle.read(65536), b""))
        report = import_prospects(
            uow, stream, source="bench", actor=actor, suppressed=suppressed_addresses
        )
    seconds = time.perf_counter() - started
    return {
        "rows": report.rows,
        "imported": report.imported,
        "already_present": report.already_present,
        "rejected": report.rejected,
        "companies_created": report.companies_created,
        "seconds": round(seconds, 3),
        "rows_per_second": round(report.rows / seconds, 1),
    }


def bench_import(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The file into a fresh tenant, then the same file again (which must change nothing)."""
    tenant = provision_tenant(TenantCreate(slug=f"bench-{uuid.uuid4().hex[:8]}", name="bench"))
    first = _import(tenant.id, path)
    again = _import(tenant.id, path)
    return first, again


def bench_copy(owner_dsn: str, path: Path) -> dict[str, float]:
    with psycopg.connect(owner_dsn) as conn:
        conn.execute(
            "CREATE TEMP TABLE copy_baseline (email text, first_name text, last_name text, "
            "title text, company text, website text)"
        )
        started = time.perf_counter()
        with (
            path.open("rb") as handle,
            conn.cursor().copy(
                "COPY copy_baseline FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy,
        ):
            while chunk := handle.read(65536):
                copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - started
        row = conn.execute("SELECT count(*) FROM copy_baseline").fetchone()
    rows = int(row[0]) if row else 0
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    os.environ["ASEP_DATABASE_NAME"] = BENCH_DATABASE
    get_settings.cache_clear()
    settings = get_settings()
    urls = database_urls(settings)
    if urls.admin is None:
        raise SystemExit(
            "bench/campaign.py needs the embedded server (it creates its own database)"
        )
    ensure_roles_and_database(urls.for_database("asep"), settings)
    drop_database(urls.admin, BENCH_DATABASE)
    create_database(urls.admin, BENCH_DATABASE, owner=settings.owner_role, app=settings.app_role)
    upgrade_to_head(urls.owner)
    reset_engines()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "prospects.csv"
        write_csv(path, args.rows, random.Random(args.seed))
        load_before = os.getloadavg()
        imported, reimported = bench_import(path)
        copied = bench_copy(libpq_dsn(urls.owner), path)
        load_after = os.getloadavg()
    reset_engines()
    drop_database(urls.admin, BENCH_DATABASE)
    print(
        json.dumps(
            {
                "benchmark": "campaign",
                "csv_import": imported,
                "reimport_same_file": reimported,
                "copy_baseline": copied,
                "import_to_copy_ratio": round(
                    imported["rows_per_second"] / copied["rows_per_second"], 3
                ),
                "goal_rows_per_second": 10_000,
                # The machine is shared: absolute rates move with its load, the ratio less.
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in load_after],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
