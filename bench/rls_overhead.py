"""RLS overhead: the same tenant-scoped transactions as the app role (RLS enforced) and as the
owner with RLS off, interleaved in one run on the same data. Prints JSON.

    .venv/bin/python bench/rls_overhead.py [--tenants 20] [--prospects 5000] [--rounds 2000]

Each measured unit is one transaction: BEGIN, set_config('app.tenant_id'), the query,
COMMIT, each its own round trip (the app's unit of work sends BEGIN and set_config as one).
The baseline runs the same statements (its set_config is a no-op for it), so the ratio is
the cost of the policies alone; `ratio_without_set_config` also charges RLS for the extra
set_config round trip.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from shared.config import get_settings
from shared.db.migrate import upgrade_to_head
from shared.db.server import (
    create_database,
    database_urls,
    drop_database,
    ensure_roles_and_database,
    libpq_dsn,
)

BENCH_DATABASE = "asep_bench_rls"
TABLES = ("companies", "prospects")
SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"

Query = tuple[str, Callable[[uuid.UUID, dict[str, Any]], tuple[Any, ...]]]

QUERIES: list[Query] = [
    (
        "SELECT * FROM prospects WHERE tenant_id = %s AND id = %s",
        lambda t, d: (t, random.choice(d["prospect_ids"][t])),
    ),
    (
        "SELECT id, email, title FROM prospects WHERE tenant_id = %s AND email = %s",
        lambda t, d: (t, random.choice(d["emails"][t])),
    ),
    (
        "SELECT id, email FROM prospects WHERE tenant_id = %s AND email > %s "
        "ORDER BY email LIMIT 50",
        lambda t, d: (t, random.choice(d["emails"][t])),
    ),
    (
        "SELECT c.domain, count(*) FROM prospects p JOIN companies c "
        "ON c.tenant_id = p.tenant_id AND c.id = p.company_id "
        "WHERE p.tenant_id = %s AND c.domain = %s GROUP BY c.domain",
        lambda t, d: (t, random.choice(d["domains"][t])),
    ),
    (
        "UPDATE prospects SET title = %s WHERE tenant_id = %s AND id = %s",
        lambda t, d: (f"title {random.randint(1, 99)}", t, random.choice(d["prospect_ids"][t])),
    ),
]


def seed(owner_dsn: str, tenants: int, prospects: int) -> dict[str, Any]:
    data: dict[str, Any] = {"prospect_ids": {}, "emails": {}, "domains": {}}
    companies_per_tenant = max(1, prospects // 10)
    with psycopg.connect(owner_dsn) as conn:
        # The baseline is the owner with RLS off for it (and COPY refuses RLS-enforced tables).
        # The app role stays under RLS: ENABLE remains on, and FORCE only decides whether the
        # owner is subject to it too.
        for table in TABLES:
            conn.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        conn.commit()
        for index in range(tenants):
            tenant_id = uuid.uuid4()
            conn.execute(SET_TENANT, (str(tenant_id),))
            conn.execute(
                "INSERT INTO tenants (id, slug, name, plan, status, settings) "
                "VALUES (%s, %s, %s, 'pilot', 'active', '{}')",
                (tenant_id, f"bench-{index}-{tenant_id.hex[:6]}", f"Bench {index}"),
            )
            company_ids = [uuid.uuid4() for _ in range(companies_per_tenant)]
            domains = [f"c{n}-{tenant_id.hex[:6]}.example" for n in range(companies_per_tenant)]
            with conn.cursor().copy(
                "COPY companies (id, tenant_id, domain, enrichment) FROM STDIN"
            ) as copy:
                for company_id, domain in zip(company_ids, domains, strict=True):
                    copy.write_row((company_id, tenant_id, domain, "{}"))
            prospect_ids = [uuid.uuid4() for _ in range(prospects)]
            emails = [f"p{n}@{domains[n % companies_per_tenant]}" for n in range(prospects)]
            with conn.cursor().copy(
                "COPY prospects (id, tenant_id, email, company_id, source, status, enrichment) "
                "FROM STDIN"
            ) as copy:
                for n, (prospect_id, email) in enumerate(zip(prospect_ids, emails, strict=True)):
                    copy.write_row(
                        (
                            prospect_id,
                            tenant_id,
                            email,
                            company_ids[n % companies_per_tenant],
                            "bench",
                            "active",
                            "{}",
                        )
                    )
            conn.commit()
            data["prospect_ids"][tenant_id] = prospect_ids
            data["emails"][tenant_id] = emails
            data["domains"][tenant_id] = domains
        conn.execute("ANALYZE companies")
        conn.execute("ANALYZE prospects")
    return data


def run_transaction(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    sql: str,
    params: tuple[Any, ...],
    set_tenant: bool,
) -> float:
    started = time.perf_counter()
    with conn.transaction():
        if set_tenant:
            conn.execute(SET_TENANT, (str(tenant_id),))
        conn.execute(sql, params).fetchall() if sql.startswith("SELECT") else conn.execute(
            sql, params
        )
    return time.perf_counter() - started


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_ms": round(statistics.fmean(ordered) * 1000, 4),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 4),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 4),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--prospects", type=int, default=5000, help="per tenant")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    random.seed(args.seed)

    settings = get_settings()
    urls = database_urls(settings)
    if urls.admin is None:
        sys.exit("rls_overhead needs the embedded server (it creates its own database)")
    ensure_roles_and_database(urls, settings)
    drop_database(urls.admin, BENCH_DATABASE)
    create_database(urls.admin, BENCH_DATABASE, owner=settings.owner_role, app=settings.app_role)
    bench_urls = urls.for_database(BENCH_DATABASE)
    upgrade_to_head(bench_urls.owner)
    data = seed(libpq_dsn(bench_urls.owner), args.tenants, args.prospects)
    tenant_ids = list(data["prospect_ids"])

    modes = {
        "app_rls": (libpq_dsn(bench_urls.app), True),
        "owner_no_rls": (libpq_dsn(bench_urls.owner), True),
        "owner_no_rls_no_set_config": (libpq_dsn(bench_urls.owner), False),
    }
    connections = {name: psycopg.connect(dsn) for name, (dsn, _) in modes.items()}
    samples: dict[str, list[float]] = {name: [] for name in modes}
    # Warm up caches and prepared statements in every mode, then interleave so drift in the
    # machine's load falls on all modes alike.
    for round_index in range(args.rounds + 200):
        tenant_id = random.choice(tenant_ids)
        sql, make_params = QUERIES[round_index % len(QUERIES)]
        params = make_params(tenant_id, data)
        order = list(modes)
        random.shuffle(order)
        for name in order:
            elapsed = run_transaction(connections[name], tenant_id, sql, params, modes[name][1])
            if round_index >= 200:
                samples[name].append(elapsed)
    for conn in connections.values():
        conn.close()
    drop_database(urls.admin, BENCH_DATABASE)

    results = {name: summarize(values) for name, values in samples.items()}
    rls, base, bare = (
        results["app_rls"],
        results["owner_no_rls"],
        results["owner_no_rls_no_set_config"],
    )
    print(
        json.dumps(
            {
                "benchmark": "rls_overhead",
                "tenants": args.tenants,
                "prospects_per_tenant": args.prospects,
                "transactions_per_mode": args.rounds,
                "queries": len(QUERIES),
                "modes": results,
                "ratio_p50": round(rls["p50_ms"] / base["p50_ms"], 3),
                "ratio_p95": round(rls["p95_ms"] / base["p95_ms"], 3),
                "ratio_mean": round(rls["mean_ms"] / base["mean_ms"], 3),
                "ratio_without_set_config_p95": round(rls["p95_ms"] / bare["p95_ms"], 3),
                "goal_ratio": 1.2,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
