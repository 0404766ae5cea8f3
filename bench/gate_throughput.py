"""Gated send decisions per second through `check_send`, end to end in PostgreSQL. Prints JSON.

    .venv/bin/python bench/gate_throughput.py [--seconds 20] [--processes 2] [--threads 4]
                                              [--tenants 8] [--recipients 30]
    .venv/bin/python bench/gate_throughput.py --profile 600

`--profile N` measures one stream instead: N decisions after a warm-up, the client's CPU
(this process) and its PostgreSQL backend's CPU (from /proc) per decision, then N more under
cProfile with a CPU clock: the gate's parts as a share of the profiled time (the profiler
inflates call-heavy code, so read shares, not milliseconds).

A measured unit is one send activity's transaction as the app runs it: open the tenant unit
of work, `check_send` (kill switch FOR SHARE, mailbox, suppression, counters, content risk,
approved templates, the default pack's decision and its POLICY_EVALUATED audit event and
decision row, the send-slot reservation), COMMIT. Sends are follow-ups (no approval needed)
to each mailbox's already-contacted recipients, so every decision is allowed and reserves.

Decisions of one tenant serialize on its audit chain head (and its per-day counter), so the
load is spread over several tenants the way a multi-tenant deployment spreads it. Runs in
its own database, dropped afterwards. `bench/policy_eval.py --gated-seconds N` embeds it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import threading
import time
import uuid
from typing import Any

BENCH_DATABASE = "asep_bench_gate"
POSTAL_ADDRESS = "Acme Inc., 1 Main Street, Springfield, IL 62701, USA"
BODY = (
    "Hi there,\n\nFollowing up on my note last week about onboarding times.\n\n"
    f"{POSTAL_ADDRESS}\nUnsubscribe: http://localhost:7071/u/token"
)


def _use_bench_database() -> None:
    os.environ["ASEP_DATABASE_NAME"] = BENCH_DATABASE


def _recipients(count: int) -> list[str]:
    return [f"buyer{i}@prospect{i % 7}.example" for i in range(count)]


def setup(tenants: int, recipients: int) -> list[tuple[str, str]]:
    """A fresh database with `tenants` tenants, one mailbox each, every recipient contacted once."""
    _use_bench_database()
    from shared.config import get_settings
    from shared.db.engine import reset_engines
    from shared.db.migrate import upgrade_to_head
    from shared.db.server import (
        create_database,
        database_urls,
        drop_database,
        ensure_roles_and_database,
    )

    get_settings.cache_clear()
    settings = get_settings()
    urls = database_urls(settings)
    ensure_roles_and_database(urls.for_database("asep"), settings)
    assert urls.admin is not None, "the benchmark creates its own database"
    drop_database(urls.admin, BENCH_DATABASE)
    create_database(urls.admin, BENCH_DATABASE, owner=settings.owner_role, app=settings.app_role)
    upgrade_to_head(urls.owner)
    reset_engines()

    from shared.audit.schemas import Actor, ActorType
    from shared.db.unit_of_work import tenant_unit_of_work
    from shared.deliverability import service as caps
    from shared.deliverability.schemas import MailboxCreate
    from shared.identity import repository as identity_repository
    from shared.identity.schemas import TenantCreate
    from shared.identity.service import provision_tenant
    from shared.policy.gate import SendRequest, check_send

    actor = Actor(type=ActorType.SYSTEM, id="bench")
    senders = []
    for index in range(tenants):
        tenant = provision_tenant(TenantCreate(slug=f"bench-gate-{index}", name=f"bench {index}"))
        with tenant_unit_of_work(tenant.id) as uow:
            row = identity_repository.get_current_tenant(uow)
            assert row is not None
            row.settings = {"postal_address": POSTAL_ADDRESS}
            mailbox = caps.create_mailbox(
                uow,
                MailboxCreate(
                    address=f"sender@tenant{index}.example",
                    provider="sandbox",
                    daily_cap=1_000_000,
                    hourly_cap=1_000_000,
                    new_recipients_cap=1_000_000,
                ),
                actor,
            )
        for recipient in _recipients(recipients):
            with tenant_unit_of_work(tenant.id) as uow:
                result = check_send(uow, _request(mailbox.id, recipient, SendRequest), actor)
                assert result.allowed, result.decision.reasons
        senders.append((str(tenant.id), str(mailbox.id)))
    return senders


def _request(mailbox_id: uuid.UUID, recipient: str, model: Any) -> Any:
    return model(
        action_id=f"send-{uuid.uuid4()}",
        mailbox_id=mailbox_id,
        recipient=recipient,
        touch_number=2,
        subject="Following up",
        body=BODY,
    )


def _worker(
    senders: list[tuple[str, str]],
    recipients: int,
    threads: int,
    seconds: float,
    start_at: float,
    seed: int,
    results: Any,
) -> None:
    _use_bench_database()
    from shared.audit.schemas import Actor, ActorType
    from shared.db.unit_of_work import tenant_unit_of_work
    from shared.policy.gate import SendRequest, check_send

    actor = Actor(type=ActorType.SYSTEM, id="bench")
    pool = _recipients(recipients)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def loop(thread_index: int) -> None:
        rng = random.Random(seed * 1000 + thread_index)
        mine: list[float] = []
        counts: dict[str, int] = {}
        while time.time() < start_at:
            time.sleep(0.001)
        deadline = start_at + seconds
        while True:
            tenant_id, mailbox_id = rng.choice(senders)
            request = _request(uuid.UUID(mailbox_id), rng.choice(pool), SendRequest)
            began = time.perf_counter()
            with tenant_unit_of_work(uuid.UUID(tenant_id)) as uow:
                result = check_send(uow, request, actor)
            finished = time.perf_counter()
            if time.time() > deadline:
                # Committed, but outside the window: verified, not counted in the rate.
                counts["late_" + result.outcome.value] = (
                    counts.get("late_" + result.outcome.value, 0) + 1
                )
                break
            mine.append(finished - began)
            counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
        with lock:
            latencies.extend(mine)
            for key, value in counts.items():
                outcomes[key] = outcomes.get(key, 0) + value

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu_before = time.process_time()
    for thread in workers:
        thread.join()
    results.put(
        {
            "latencies": latencies,
            "outcomes": outcomes,
            "cpu_s": time.process_time() - cpu_before,
        }
    )


def measure(
    *, seconds: float, processes: int, threads: int, tenants: int, recipients: int
) -> dict[str, Any]:
    senders = setup(tenants, recipients)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3.0  # spawned interpreters import the app before the clock starts
    children = [
        context.Process(
            target=_worker,
            args=(senders, recipients, threads, seconds, start_at, seed, results),
        )
        for seed in range(processes)
    ]
    for child in children:
        child.start()
    machine = _machine_cpu_during(start_at + 1.0, start_at + seconds - 1.0)
    collected = [results.get(timeout=seconds + 120) for _ in children]
    for child in children:
        child.join()
    latencies = sorted(x for part in collected for x in part["latencies"])
    outcomes: dict[str, int] = {}
    for part in collected:
        for key, value in part["outcomes"].items():
            outcomes[key] = outcomes.get(key, 0) + value
    late = {key: outcomes.pop(key) for key in list(outcomes) if key.startswith("late_")}
    total = len(latencies)
    allowed = outcomes.get("allowed", 0)
    client_cpu = sum(part["cpu_s"] for part in collected)
    _verify_and_drop(senders, allowed + late.get("late_allowed", 0) + tenants * recipients)
    return {
        "benchmark": "gate_throughput",
        "cpu_count": os.cpu_count(),
        "processes": processes,
        "threads_per_process": threads,
        "tenants": tenants,
        "seconds": seconds,
        "decisions": total,
        "decisions_per_s": round(total / seconds, 1),
        "allowed_with_reservation_per_s": round(allowed / seconds, 1),
        "outcomes": outcomes,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 2) if latencies else None,
            "p99": round(latencies[int(0.99 * (total - 1))] * 1000, 2) if latencies else None,
            "max": round(latencies[-1] * 1000, 2) if latencies else None,
        },
        # Where the CPU went: the benchmark's own processes per decision (all threads, the
        # window's last decisions included), and the whole machine's busy share during the
        # window (other users of the machine included: read it with the load average).
        "client_cpu_ms_per_decision": round(client_cpu * 1000 / total, 2) if total else None,
        "machine_cpu_busy": machine,
        "loadavg": os.getloadavg()[0],
        "goal_decisions_per_s": 500,
        "goal_met": total / seconds >= 500,
    }


def _cpu_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _machine_cpu_during(begin: float, end: float) -> float | None:
    """The machine's busy CPU share (0..1 of all cores) between two wall-clock times."""
    if not os.path.exists("/proc/stat"):
        return None
    time.sleep(max(0.0, begin - time.time()))
    busy_before, total_before = _cpu_jiffies()
    time.sleep(max(0.0, end - time.time()))
    busy_after, total_after = _cpu_jiffies()
    return round((busy_after - busy_before) / max(1, total_after - total_before), 3)


def _verify_and_drop(senders: list[tuple[str, str]], expected_reservations: int) -> None:
    """Every allowed decision holds exactly one slot (counted in the mailbox-day counters),
    and every decision (warm-up included) has its audit event."""
    from sqlalchemy import text

    from shared.config import get_settings
    from shared.db.engine import reset_engines
    from shared.db.server import database_urls, drop_database
    from shared.db.unit_of_work import tenant_unit_of_work

    used = reservations = evaluated = 0
    for tenant_id, _ in senders:
        with tenant_unit_of_work(uuid.UUID(tenant_id)) as uow:
            row = uow.execute(
                text(
                    "SELECT (SELECT coalesce(sum(used), 0) FROM send_counters "
                    "        WHERE scope = 'mailbox_day'),"
                    " (SELECT count(*) FROM send_reservations),"
                    " (SELECT count(*) FROM audit_events WHERE event_type = 'POLICY_EVALUATED')"
                )
            ).one()
        used, reservations, evaluated = used + row[0], reservations + row[1], evaluated + row[2]
    assert used == reservations == expected_reservations, (
        used,
        reservations,
        expected_reservations,
    )
    assert evaluated >= expected_reservations
    reset_engines()
    urls = database_urls(get_settings())
    assert urls.admin is not None
    drop_database(urls.admin, BENCH_DATABASE)


# The gate's parts, as the profile reports them (cumulative CPU, nested: check_send holds
# the rest but the unit of work's own begin and commit).
_PROFILED_PARTS = (
    "tenant_unit_of_work",
    "check_send",
    "_gather",
    "build_policy_input",
    "prepare_decision",
    "record_decision",
    "append_sealed_in_database",
    "plan_reservation",
    "complete_reservation",
)


def profile(decisions: int) -> dict[str, Any]:
    """One stream: CPU per decision in this process and in its backend, and a profile."""
    import cProfile
    import pstats
    import resource

    from sqlalchemy import text

    senders = setup(2, 30)
    from shared.audit.schemas import Actor, ActorType
    from shared.db.unit_of_work import tenant_unit_of_work
    from shared.policy.gate import SendRequest, check_send

    actor = Actor(type=ActorType.SYSTEM, id="bench")
    pool = _recipients(30)
    rng = random.Random(1)

    def run(count: int) -> None:
        for _ in range(count):
            tenant_id, mailbox_id = rng.choice(senders)
            request = _request(uuid.UUID(mailbox_id), rng.choice(pool), SendRequest)
            with tenant_unit_of_work(uuid.UUID(tenant_id)) as uow:
                assert check_send(uow, request, actor).allowed

    def own_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    run(200)
    with tenant_unit_of_work(uuid.UUID(senders[0][0])) as uow:
        backend = int(uow.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def backend_cpu() -> float:
        with open(f"/proc/{backend}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    began, client, server = time.perf_counter(), own_cpu(), backend_cpu()
    run(decisions)
    wall = time.perf_counter() - began
    client, server = own_cpu() - client, backend_cpu() - server
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    run(decisions)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    parts: dict[str, float] = {}
    for (path, _, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        if name in _PROFILED_PARTS and "/shared/" in path:
            parts[name] = parts.get(name, 0.0) + entry[3]
    _verify_and_drop(senders, len(senders) * 30 + 200 + 2 * decisions)
    return {
        "benchmark": "gate_profile",
        "decisions": decisions,
        "wall_ms_per_decision": round(wall * 1000 / decisions, 2),
        "client_cpu_ms_per_decision": round(client * 1000 / decisions, 2),
        "backend_cpu_ms_per_decision": round(server * 1000 / decisions, 2),
        "loadavg": os.getloadavg()[0],
        "profiled_ms_per_decision": round(total * 1000 / decisions, 2),
        "profiled_share": {
            name: round(parts[name] / total, 3) for name in _PROFILED_PARTS if name in parts
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--recipients", type=int, default=30)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.profile:
        print(json.dumps(profile(args.profile), indent=2))
        return
    print(
        json.dumps(
            measure(
                seconds=args.seconds,
                processes=args.processes,
                threads=args.threads,
                tenants=args.tenants,
                recipients=args.recipients,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
