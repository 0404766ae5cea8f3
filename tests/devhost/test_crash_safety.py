"""kill -9 devhost in the middle of 200-activity fan-outs; every restart finishes every instance."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest

from tests.devhost.conftest import CONFORMANCE_APP, DevhostProcess, fresh_database

FAN_OUT = 200
EXPECTED = {"count": FAN_OUT, "sum": sum(2 * n for n in range(FAN_OUT))}


def wait_for_progress(host: DevhostProcess, instance_id: str, fraction: float) -> None:
    """Return once `fraction` of the fan-out's activities are done (or after 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        instances = httpx.get(f"{host.base_url}/admin/devhost/instances", timeout=5).json()
        mine = [i for i in instances["instances"] if i.get("instanceId") == instance_id]
        if mine and mine[0].get("runtimeStatus") == "Completed":
            return
        # History: FAN_OUT TaskScheduled events first, then one TaskCompleted per activity.
        if mine and mine[0].get("historyEvents", 0) >= FAN_OUT * (1 + fraction):
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_kill_minus_nine_during_fan_out_five_times(worker_id: str, tmp_path: Path) -> None:
    dsn = fresh_database(f"devhost_crash_{worker_id}")
    rng = random.Random()
    host = DevhostProcess(app_dir=CONFORMANCE_APP, dsn=dsn, log_path=tmp_path / "devhost.log")
    host.start()
    instances: list[str] = []
    interrupted = 0
    try:
        for round_number in range(5):
            instances.append(host.start_instance("fan_out", FAN_OUT, f"crash-{round_number}"))
            instances.append(host.start_instance("sequence", 20, f"crash-seq-{round_number}"))
            # Kill at a random point of the fan-out's progress, not at a random time: on a
            # loaded machine a fixed delay lands before it starts or after it ends.
            wait_for_progress(host, f"crash-{round_number}", rng.uniform(0.1, 0.9))
            interrupted += host.status(f"crash-{round_number}")["runtimeStatus"] != "Completed"
            host.kill()
            host.start()
            for instance_id in instances:
                status = host.wait_for(instance_id, timeout=90)
                assert status["runtimeStatus"] == "Completed", status
                if instance_id.startswith("crash-seq-"):
                    assert status["output"] == sum(2 * n for n in range(20))
                else:
                    assert status["output"] == EXPECTED
        assert interrupted >= 3, "the kills should land while fan-outs are in flight"
        for instance_id in instances:
            history = httpx.get(
                f"{host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}"
                "?showHistory=true",
                timeout=10,
            ).json()["historyEvents"]
            completed = [e["TaskScheduledId"] for e in history if e["EventType"] == "TaskCompleted"]
            # At-least-once execution, exactly-once application to the history.
            assert len(completed) == len(set(completed))
        leftovers = httpx.get(f"{host.base_url}/admin/devhost/instances").json()["instances"]
        assert all(i["pendingActivities"] == 0 and i["pendingMessages"] == 0 for i in leftovers)
    finally:
        host.stop()
