"""The canonical Durable patterns, through HTTP and the real DurableOrchestrationClient."""

from __future__ import annotations

import time
import uuid
from typing import Any

import azure.durable_functions as df
import httpx
import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from tests.devhost.conftest import DevhostProcess

WEBHOOK = "/runtime/webhooks/durabletask"


def test_chaining_through_the_apps_http_starter(devhost: DevhostProcess) -> None:
    response = httpx.post(f"{devhost.base_url}/api/orchestrators/chaining", timeout=10)
    assert response.status_code == 202
    payload = response.json()
    assert response.headers["location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(f"{devhost.base_url}{WEBHOOK}/instances/")
    status = devhost.wait_for(payload["id"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo", "Hello Seattle", "Hello London"]
    final = httpx.get(payload["statusQueryGetUri"], timeout=10)
    assert final.status_code == 200


def test_wait_for_completion_returns_the_output(devhost: DevhostProcess) -> None:
    response = httpx.post(f"{devhost.base_url}/api/run/sequence", json=10, timeout=30)
    assert response.status_code == 200
    assert response.json() == sum(2 * n for n in range(10))


def test_fan_out_fan_in_of_200(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("fan_out", 200)
    status = devhost.wait_for(instance_id, timeout=60)
    assert status["output"] == {"count": 200, "sum": sum(2 * n for n in range(200))}
    history = httpx.get(
        f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}?showHistory=true", timeout=10
    ).json()["historyEvents"]
    scheduled = [e for e in history if e["EventType"] == "TaskScheduled"]
    completed = [e for e in history if e["EventType"] == "TaskCompleted"]
    assert sorted(e["EventId"] for e in scheduled) == list(range(200))
    assert sorted(e["TaskScheduledId"] for e in completed) == list(range(200))
    episodes = sum(1 for e in history if e["EventType"] == "OrchestratorStarted")
    # Completions are batched into episodes; one episode per completion would be 201.
    assert episodes < 150


@pytest.mark.parametrize("approve", [True, False])
def test_human_interaction_approval_or_timeout(devhost: DevhostProcess, approve: bool) -> None:
    timeout = 30 if approve else 1
    instance_id = devhost.start_instance("approval", timeout)
    if approve:
        time.sleep(0.3)

        async def raise_it(client: df.DurableOrchestrationClient) -> None:
            await client.raise_event(instance_id, "Approval", {"by": "ann"})

        devhost.run_client(raise_it)
    started = time.monotonic()
    status = devhost.wait_for(instance_id, timeout=20)
    assert status["runtimeStatus"] == "Completed"
    if approve:
        # The SDK encodes the event payload twice, so the orchestrator receives text (#295).
        assert status["output"] == {"approved": '{"by": "ann"}'}
        assert time.monotonic() - started < 5
    else:
        assert status["output"] == {"approved": None, "timed_out": True}


def test_event_raised_over_http_before_the_wait_is_buffered(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("waiter")
    base = f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/raiseEvent"
    # Raise the second event first: it must wait in history until the orchestrator asks.
    second = httpx.post(f"{base}/Second", json={"n": 2}, timeout=10)
    assert second.status_code == 202
    time.sleep(0.3)
    assert devhost.status(instance_id)["runtimeStatus"] == "Running"
    assert httpx.post(f"{base}/First", json={"n": 1}, timeout=10).status_code == 202
    status = devhost.wait_for(instance_id)
    assert status["output"] == [{"n": 1}, {"n": 2}]


def test_malformed_event_bodies_are_rejected(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("waiter")
    base = f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/raiseEvent/First"
    not_json = httpx.post(base, content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    wrong_type = httpx.post(base, content=b"hello", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 400
    assert devhost.status(instance_id)["runtimeStatus"] == "Running"
    httpx.post(f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/terminate?reason=cleanup")


def test_monitor_loops_on_timers_with_custom_status(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("monitor", {"checks": 5, "interval": 0.2})
    status = devhost.wait_for(instance_id)
    assert status["output"] == 3
    assert status["customStatus"] == {"checks": 3, "last": "done"}


def test_retry_fails_twice_then_succeeds(devhost: DevhostProcess) -> None:
    key = uuid.uuid4().hex
    instance_id = devhost.start_instance("retrying", {"key": key, "failures": 2, "max": 3})
    status = devhost.wait_for(instance_id)
    assert status["output"] == {"result": f"{key} succeeded on attempt 3"}
    history = httpx.get(
        f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}?showHistory=true", timeout=10
    ).json()["historyEvents"]
    kinds = [(e["EventType"], e.get("EventId")) for e in history]
    # attempt 0, retry timer 1, attempt 2, retry timer 3, attempt 4 (DTFx RetryInterceptor ids).
    assert [k for k in kinds if k[0] in ("TaskScheduled", "TimerCreated")] == [
        ("TaskScheduled", 0),
        ("TimerCreated", 1),
        ("TaskScheduled", 2),
        ("TimerCreated", 3),
        ("TaskScheduled", 4),
    ]


def test_retry_past_max_attempts_fails_the_instance(devhost: DevhostProcess) -> None:
    key = uuid.uuid4().hex
    instance_id = devhost.start_instance("retrying", {"key": key, "failures": 5, "max": 3})
    status = devhost.wait_for(instance_id)
    assert status["runtimeStatus"] == "Failed"
    assert "Orchestrator function 'retrying' failed" in status["output"]
    assert f"attempt 3 of {key} failed" in status["output"]
    caught_key = uuid.uuid4().hex
    caught = devhost.wait_for(
        devhost.start_instance(
            "retrying", {"key": caught_key, "failures": 5, "max": 2, "catch": True}
        )
    )
    assert "Activity function 'flaky' failed" in caught["output"]["caught"]
    assert f"attempt 2 of {caught_key} failed" in caught["output"]["caught"]


def test_sub_orchestrations_with_and_without_retry(devhost: DevhostProcess) -> None:
    key = uuid.uuid4().hex
    instance_id = devhost.start_instance("parent", {"key": key})
    status = devhost.wait_for(instance_id, timeout=60)
    assert status["output"] == {
        "child": ["Hello Tokyo", "Hello Seattle", "Hello London"],
        "flaky": f"{key} succeeded on attempt 3",
        "fanned": [{"count": 3, "sum": 6}, {"count": 3, "sum": 6}],
    }
    child = devhost.status(f"{instance_id}-child")
    assert child["runtimeStatus"] == "Completed"


def test_continue_as_new_keeps_history_bounded(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("eternal", {"n": 0, "until": 25})
    status = devhost.wait_for(instance_id, timeout=60)
    assert status["output"] == {"n": 25, "last": 48}
    history = httpx.get(
        f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}?showHistory=true", timeout=10
    ).json()["historyEvents"]
    assert len(history) < 12  # only the last execution's history is kept


def test_terminate_then_raise_to_finished_instance_is_gone(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("waiter")

    async def terminate(client: df.DurableOrchestrationClient) -> Any:
        await client.terminate(instance_id, "enough")
        return None

    devhost.run_client(terminate)
    status = devhost.wait_for(instance_id)
    assert status["runtimeStatus"] == "Terminated"
    assert status["output"] == "enough"
    gone = httpx.post(
        f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/raiseEvent/First", json=1, timeout=10
    )
    assert gone.status_code == 410
    assert (
        httpx.post(f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/terminate").status_code
        == 410
    )

    async def raise_late(client: df.DurableOrchestrationClient) -> None:
        await client.raise_event(instance_id, "First", 1)

    with pytest.raises(Exception, match="is gone"):
        devhost.run_client(raise_late)


def test_raise_to_completed_instance_is_410(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("chaining")
    devhost.wait_for(instance_id)
    response = httpx.post(
        f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/raiseEvent/Any", json=1, timeout=10
    )
    assert response.status_code == 410


def test_nondeterminism_is_detected_with_a_clear_error(devhost: DevhostProcess) -> None:
    status = devhost.wait_for(devhost.start_instance("shifty"))
    assert status["runtimeStatus"] == "Failed"
    assert status["output"].startswith("Non-Deterministic workflow detected")
    assert "sequence ID 0" in status["output"]
    assert "'say_hello'" in status["output"]
    assert "'double'" in status["output"]


def test_unknown_orchestrator_is_404_and_unknown_activity_fails_clearly(
    devhost: DevhostProcess,
) -> None:
    response = httpx.post(f"{devhost.base_url}{WEBHOOK}/orchestrators/nope", json=1, timeout=10)
    assert response.status_code == 404
    assert "The function 'nope' doesn't exist" in response.json()["ExceptionMessage"]
    status = devhost.wait_for(devhost.start_instance("calls_missing"))
    assert status["runtimeStatus"] == "Failed"
    assert "The function 'no_such_activity' doesn't exist" in status["output"]

    async def start_missing(client: df.DurableOrchestrationClient) -> str:
        return str(await client.start_new("nope"))

    with pytest.raises(Exception, match="doesn't exist"):
        devhost.run_client(start_missing)


def test_orchestrator_exception_fails_the_instance(devhost: DevhostProcess) -> None:
    status = devhost.wait_for(devhost.start_instance("crashes"))
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == "Orchestrator function 'crashes' failed: the orchestrator gave up"
    failed = httpx.get(
        f"{devhost.base_url}{WEBHOOK}/instances/{status['instanceId']}"
        "?returnInternalServerErrorOnFailure=true",
        timeout=10,
    )
    assert failed.status_code == 500


def test_replay_flag_and_deterministic_clock(devhost: DevhostProcess) -> None:
    status = devhost.wait_for(devhost.start_instance("replay_aware"))
    assert status["output"]["replaying_at_end"] is False


def test_suspend_holds_events_until_resume(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("waiter")
    time.sleep(0.2)

    async def suspend(client: df.DurableOrchestrationClient) -> None:
        await client.suspend(instance_id, "hold on")

    devhost.run_client(suspend)
    deadline = time.monotonic() + 5
    while devhost.status(instance_id)["runtimeStatus"] != "Suspended":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    base = f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/raiseEvent"
    httpx.post(f"{base}/First", json="a", timeout=10)
    httpx.post(f"{base}/Second", json="b", timeout=10)
    time.sleep(0.5)
    assert devhost.status(instance_id)["runtimeStatus"] == "Suspended"

    async def resume(client: df.DurableOrchestrationClient) -> None:
        await client.resume(instance_id, "go")

    devhost.run_client(resume)
    assert devhost.wait_for(instance_id)["output"] == ["a", "b"]


def test_client_queries_and_purge(devhost: DevhostProcess) -> None:
    prefix = f"q-{uuid.uuid4().hex[:8]}"
    ids = [f"{prefix}-{n}" for n in range(3)]

    async def scenario(client: df.DurableOrchestrationClient) -> dict[str, Any]:
        for instance_id in ids:
            assert await client.start_new("chaining", instance_id) == instance_id
        for instance_id in ids:
            for _ in range(200):
                status = await client.get_status(instance_id)
                if status.runtime_status == OrchestrationRuntimeStatus.Completed:
                    break
                await __import__("asyncio").sleep(0.05)
        completed = await client.get_status_by(
            runtime_status=[OrchestrationRuntimeStatus.Completed]
        )
        everything = await client.get_status_all()
        missing = await client.get_status("does-not-exist")
        purged = await client.purge_instance_history(ids[0])
        purged_again = await client.purge_instance_history(ids[0])
        return {
            "completed": {s.instance_id for s in completed},
            "all": {s.instance_id for s in everything},
            "missing": missing.runtime_status,
            "purged": purged.instances_deleted,
            "purged_again": purged_again.instances_deleted,
            "output": (await client.get_status(ids[1])).output,
        }

    result = devhost.run_client(scenario)
    assert set(ids) <= result["completed"]
    assert set(ids) <= result["all"]
    assert result["missing"] is None
    assert result["purged"] == 1
    assert result["purged_again"] == 0
    assert result["output"] == ["Hello Tokyo", "Hello Seattle", "Hello London"]
    assert httpx.get(f"{devhost.base_url}{WEBHOOK}/instances/{ids[0]}").status_code == 404
    listed = httpx.get(
        f"{devhost.base_url}{WEBHOOK}/instances/?instanceIdPrefix={prefix}", timeout=10
    ).json()
    assert sorted(s["instanceId"] for s in listed) == ids[1:]


def test_starting_a_running_instance_id_again_is_refused(devhost: DevhostProcess) -> None:
    instance_id = f"dup-{uuid.uuid4().hex[:8]}"
    devhost.start_instance("waiter", instance_id=instance_id)

    async def again(client: df.DurableOrchestrationClient) -> str:
        return str(await client.start_new("waiter", instance_id))

    with pytest.raises(Exception, match="already exists"):
        devhost.run_client(again)
    httpx.post(f"{devhost.base_url}{WEBHOOK}/instances/{instance_id}/terminate")


def test_activity_with_a_durable_client_binding(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("starts_another")
    status = devhost.wait_for(instance_id)
    assert status["output"] == f"{instance_id}-started"
    assert devhost.wait_for(f"{instance_id}-started")["runtimeStatus"] == "Completed"


def test_admin_instances_listing(devhost: DevhostProcess) -> None:
    instance_id = devhost.start_instance("chaining")
    devhost.wait_for(instance_id)
    listing = httpx.get(f"{devhost.base_url}/admin/devhost/instances", timeout=10).json()
    assert listing["counts"]["Completed"] >= 1
    row = next(i for i in listing["instances"] if i["instanceId"] == instance_id)
    assert row["name"] == "chaining"
    assert row["historyEvents"] > 0
    invocations = httpx.get(f"{devhost.base_url}/admin/devhost/invocations", timeout=10).json()
    assert any(
        i["instance_id"] == instance_id and i["function"] == "say_hello" for i in invocations
    )
