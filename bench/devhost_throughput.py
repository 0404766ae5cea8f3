"""devhost throughput: activities/s per instance for fan-out and for a sequential chain.

Prints JSON. Beside each rate is the floor the real SDK sets: the seconds spent inside the
SDK's own `handle()` replays for the same run, and their share of the wall time
(`sdk_ratio` = 1.0 would mean the host adds nothing on top of the SDK).

    .venv/bin/python bench/devhost_throughput.py [--fan-out 1000] [--sequential 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.devhost.conftest import CONFORMANCE_APP, DevhostProcess, fresh_database  # noqa: E402


def stats(host: DevhostProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{host.base_url}/admin/devhost/stats", timeout=10).json()
    return body


def measure(host: DevhostProcess, orchestrator: str, activities: int) -> dict[str, Any]:
    before = stats(host)["engine"]
    started = time.perf_counter()
    instance_id = host.start_instance(orchestrator, activities)
    status = host.wait_for(instance_id, timeout=600)
    elapsed = time.perf_counter() - started
    after = stats(host)["engine"]
    assert status["runtimeStatus"] == "Completed", status
    sdk_seconds = after["sdk_seconds"] - before["sdk_seconds"]
    return {
        "activities": activities,
        "seconds": round(elapsed, 3),
        "activities_per_second": round(activities / elapsed, 1),
        "episodes": after["episodes"] - before["episodes"],
        "sdk_handle_seconds": round(sdk_seconds, 3),
        "sdk_bound_activities_per_second": round(activities / sdk_seconds, 1)
        if sdk_seconds
        else None,
        "sdk_ratio": round(sdk_seconds / elapsed, 3),
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = max(runs, key=lambda r: float(r["activities_per_second"]))
    return {**chosen, "runs": [r["activities_per_second"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fan-out", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    dsn = fresh_database("devhost_bench")
    with tempfile.TemporaryDirectory() as scratch:
        host = DevhostProcess(
            app_dir=CONFORMANCE_APP, dsn=dsn, log_path=Path(scratch) / "devhost.log"
        )
        host.start()
        try:
            measure(host, "fan_out", 50)  # warm-up: imports, pools, caches
            fan_out = best([measure(host, "fan_out", args.fan_out) for _ in range(args.runs)])
            sequential = best(
                [measure(host, "sequence", args.sequential) for _ in range(args.runs)]
            )
        finally:
            host.stop()
    print(
        json.dumps(
            {
                "benchmark": "devhost_throughput",
                "fan_out": fan_out,
                "sequential": sequential,
                "goals": {
                    "fan_out_activities_per_second": 200,
                    "sequential_activities_per_second": 50,
                },
                "anchors": {
                    "azure_storage_per_instance": {"sequential": 5, "fan_out": 100},
                    "netherite_per_worker": {"sequential": "250-350", "parallel": "500-2000"},
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
