"""The JSON protocol between the Durable Functions extension and the Python SDK.

Field names and numbers follow DTFx `History/*.cs` and the extension's out-of-process shim; see
../shared/notes/durable-protocol.md. Everything here is pure: no I/O, no clock reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"

# The pair that makes the 1.7 SDK use ReplaySchema.V3 (one flat action list, schemaVersion 2).
UPPER_SCHEMA_VERSION = 1
UPPER_SCHEMA_VERSION_NEW = 2


class EventType(IntEnum):
    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


class OrchestrationStatus(IntEnum):
    """DTFx `OrchestrationStatus`, used in ExecutionCompleted events."""

    RUNNING = 0
    COMPLETED = 1
    CONTINUED_AS_NEW = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    PENDING = 6
    SUSPENDED = 7


class RuntimeStatus:
    """The runtimeStatus strings of the HTTP API and `OrchestrationRuntimeStatus`."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    ALL = (PENDING, RUNNING, COMPLETED, CONTINUED_AS_NEW, FAILED, CANCELED, TERMINATED, SUSPENDED)
    TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, TERMINATED})


class ActionType(IntEnum):
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


class SlotKind:
    """What a sequence id was spent on; the nondeterminism check compares these."""

    ACTIVITY = "activity"
    SUB_ORCHESTRATION = "sub-orchestration"
    TIMER = "timer"
    CONTINUE_AS_NEW = "continue-as-new"
    ENTITY = "entity"


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    # Accepts the SDK's "%Y-%m-%dT%H:%M:%S.%fZ" and the .NET 7-digit fraction.
    body = text.rstrip("Z")
    if "." in body:
        head, fraction = body.split(".", 1)
        offset = ""
        for sign in ("+", "-"):
            if sign in fraction:
                fraction, offset = fraction.split(sign, 1)
                offset = sign + offset
        body = f"{head}.{fraction[:6].ljust(6, '0')}{offset}"
    parsed = datetime.fromisoformat(body)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def history_event(
    event_type: EventType, at: datetime, event_id: int = -1, **fields: Any
) -> dict[str, Any]:
    return {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_timestamp(at),
        **fields,
    }


def played_event_json(event: dict[str, Any]) -> str:
    """An event from an earlier episode, serialized once and reused by every later replay."""
    return json.dumps({**event, "IsPlayed": True})


def orchestration_context_json(
    *,
    instance_id: str,
    played: list[str],
    new_events: list[dict[str, Any]],
    input_text: Any,
    parent_instance_id: str | None,
) -> str:
    """The trigger payload the extension builds (`OrchestrationContextToString`).

    `played` are the earlier episodes' events, already serialized with IsPlayed=true (see
    `played_event_json`); `new_events` are this episode's. Timer durations are null, as the
    DTS and MSSQL backends send them: no long-timer splitting.
    """
    rest = json.dumps(
        {
            "input": input_text,
            "instanceId": instance_id,
            "isReplaying": bool(played),
            "parentInstanceId": parent_instance_id,
            "upperSchemaVersion": UPPER_SCHEMA_VERSION,
            "upperSchemaVersionNew": UPPER_SCHEMA_VERSION_NEW,
            "longRunningTimerIntervalDuration": None,
            "maximumShortTimerDuration": None,
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
    )
    history = ",".join([*played, *(json.dumps(event) for event in new_events)])
    return f'{{"history":[{history}],{rest[1:]}'


@dataclass
class OrchestratorResult:
    is_done: bool
    actions: list[dict[str, Any]]
    output: Any = None
    has_output: bool = False
    error: str | None = None
    custom_status: Any = None


class ProtocolError(Exception):
    """The SDK returned something the host cannot interpret."""


def parse_orchestrator_state(state_json: str) -> OrchestratorResult:
    try:
        state = json.loads(state_json)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"orchestrator state is not JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise ProtocolError("orchestrator state is not a JSON object")
    raw_actions = state.get("actions") or []
    actions: list[dict[str, Any]] = []
    # V2/V3: a single inner list holds every action of this execution, in yield order.
    for group in raw_actions:
        if isinstance(group, list):
            actions.extend(a for a in group if isinstance(a, dict))
        elif isinstance(group, dict):
            actions.append(group)
    return OrchestratorResult(
        is_done=bool(state.get("isDone")),
        actions=actions,
        output=state.get("output"),
        has_output="output" in state,
        error=state.get("error"),
        custom_status=state.get("customStatus"),
    )


def parse_failure(exc: BaseException) -> OrchestratorResult:
    """The failure path: `handle()` raises with the state JSON after `$OutOfProcData$:`."""
    message = str(exc)
    if OUT_OF_PROC_LABEL in message:
        head, _, tail = message.partition(OUT_OF_PROC_LABEL)
        try:
            result = parse_orchestrator_state(tail)
        except ProtocolError:
            return OrchestratorResult(is_done=False, actions=[], error=head or message)
        result.error = result.error or head
        return result
    return OrchestratorResult(is_done=False, actions=[], error=message or type(exc).__name__)


@dataclass(frozen=True)
class ScheduledAction:
    """One id-consuming (or event-waiting) leaf action, in the SDK's yield order."""

    action_type: ActionType
    payload: dict[str, Any]

    @property
    def consumes_id(self) -> bool:
        return self.action_type is not ActionType.WAIT_FOR_EXTERNAL_EVENT

    @property
    def slot_kind(self) -> str:
        match self.action_type:
            case (
                ActionType.CALL_ACTIVITY
                | ActionType.CALL_ACTIVITY_WITH_RETRY
                | ActionType.CALL_HTTP
            ):
                return SlotKind.ACTIVITY
            case ActionType.CALL_SUB_ORCHESTRATOR | ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
                return SlotKind.SUB_ORCHESTRATION
            case ActionType.CREATE_TIMER:
                return SlotKind.TIMER
            case ActionType.CONTINUE_AS_NEW:
                return SlotKind.CONTINUE_AS_NEW
            case _:
                return SlotKind.ENTITY

    @property
    def slot_name(self) -> str:
        if self.action_type is ActionType.CALL_HTTP:
            return "BuiltIn::HttpActivity"
        if self.action_type in (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY):
            return str(self.payload.get("instanceId") or "")
        return str(self.payload.get("functionName") or "")


@dataclass
class FlattenedActions:
    leaves: list[ScheduledAction] = field(default_factory=list)

    @property
    def id_consuming(self) -> list[ScheduledAction]:
        return [leaf for leaf in self.leaves if leaf.consumes_id]


def flatten_actions(actions: list[dict[str, Any]]) -> FlattenedActions:
    """Depth-first, in order: the order in which the SDK hands out sequence ids."""
    flat = FlattenedActions()

    def visit(action: dict[str, Any]) -> None:
        try:
            kind = ActionType(int(action["actionType"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ProtocolError(f"unknown action {action!r}") from exc
        if kind in (ActionType.WHEN_ALL, ActionType.WHEN_ANY):
            for child in action.get("compoundActions") or []:
                visit(child)
            return
        flat.leaves.append(ScheduledAction(kind, action))

    for action in actions:
        visit(action)
    return flat
