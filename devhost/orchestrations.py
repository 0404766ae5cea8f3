"""The orchestration engine: episodes over the real SDK's `handle()`, history in PostgreSQL.

One episode = one transaction on one instance row (locked FOR UPDATE SKIP LOCKED):
every visible inbox message of the instance is applied at once, the SDK replays the whole
history, new actions become history events and work items, and the inbox rows are deleted.
A crash anywhere rolls the transaction back, so the episode simply runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import OrchestrationTriggerConverter
from psycopg_pool import AsyncConnectionPool

from devhost.app_loader import FunctionIndex
from devhost.invocations import InvocationLog
from devhost.protocol import (
    ActionType,
    EventType,
    OrchestrationStatus,
    OrchestratorResult,
    ProtocolError,
    RuntimeStatus,
    ScheduledAction,
    SlotKind,
    flatten_actions,
    format_timestamp,
    history_event,
    orchestration_context_json,
    parse_failure,
    parse_orchestrator_state,
    parse_timestamp,
    played_event_json,
)
from devhost.store import SCHEMA, jsonb, utcnow

log = logging.getLogger(__name__)

CONTROL_EVENTS = (
    int(EventType.EXECUTION_TERMINATED),
    int(EventType.EXECUTION_SUSPENDED),
    int(EventType.EXECUTION_RESUMED),
)


@dataclass
class RetryState:
    kind: str  # SlotKind.ACTIVITY or SlotKind.SUB_ORCHESTRATION
    name: str
    input: str | None
    instance_id: str | None
    max_attempts: int
    interval_ms: int
    attempt: int = 1
    waiting_on_timer: bool = False


@dataclass
class EngineState:
    """Per-execution bookkeeping, persisted with the instance row in the same transaction."""

    next_seq: int = 0
    # (seq, kind, name) of every id-consuming action the SDK has emitted, in emission order.
    slots: list[tuple[int, str, str]] = field(default_factory=list)
    # seq -> kind, for work whose completion has not been applied yet (duplicates are dropped).
    open: dict[int, str] = field(default_factory=dict)
    retries: dict[int, RetryState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "next_seq": self.next_seq,
            "slots": [list(s) for s in self.slots],
            "open": {str(k): v for k, v in self.open.items()},
            "retries": {str(k): asdict(v) for k, v in self.retries.items()},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> EngineState:
        if not raw:
            return cls()
        return cls(
            next_seq=int(raw.get("next_seq", 0)),
            slots=[(int(s[0]), str(s[1]), str(s[2])) for s in raw.get("slots", [])],
            open={int(k): str(v) for k, v in raw.get("open", {}).items()},
            retries={int(k): RetryState(**v) for k, v in raw.get("retries", {}).items()},
        )

    def allocate(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq


@dataclass
class InstanceRow:
    instance_id: str
    name: str
    execution_id: str
    runtime_status: str
    input: str | None
    parent_instance_id: str | None
    parent_execution_id: str | None
    parent_task_id: int | None
    history_len: int
    engine_state: dict[str, Any]
    episodes: int


@dataclass
class InboxMessage:
    id: int
    execution_id: str | None
    event: dict[str, Any]

    @property
    def event_type(self) -> int:
        return int(self.event["EventType"])


@dataclass
class ChildStart:
    instance_id: str
    name: str
    input_json: str | None
    parent_task_id: int


@dataclass
class EpisodeOutcome:
    """Everything an episode writes, gathered before the single write phase."""

    new_events: list[dict[str, Any]] = field(default_factory=list)
    activity_tasks: list[tuple[int, str, str | None]] = field(default_factory=list)
    timers: list[tuple[int, datetime]] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)
    runtime_status: str | None = None
    output_json: str | None = None
    output_set: bool = False
    custom_status_json: str | None = None
    custom_status_set: bool = False
    completed: bool = False
    continue_as_new_input: str | None = None
    continue_as_new: bool = False
    parent_event: dict[str, Any] | None = None
    ran_orchestrator: bool = False
    sdk_seconds: float = 0.0


class EpisodeFailure(Exception):
    """Fails the instance outright (nondeterminism, unknown function, unsupported action)."""


def _nondeterminism(
    seq: int, previous: tuple[str, str], current: ScheduledAction
) -> EpisodeFailure:
    prev_kind, prev_name = previous
    return EpisodeFailure(
        "Non-Deterministic workflow detected: A previous execution of this orchestration "
        f"scheduled a {prev_kind} task with sequence ID {seq} and name '{prev_name}', but the "
        f"current replay execution scheduled a {current.slot_kind} task named "
        f"'{current.slot_name}' instead. Was a change made to the orchestrator code after this "
        "instance had already started running?"
    )


def _status_for_output(status: str) -> int:
    return {
        RuntimeStatus.COMPLETED: OrchestrationStatus.COMPLETED,
        RuntimeStatus.FAILED: OrchestrationStatus.FAILED,
        RuntimeStatus.TERMINATED: OrchestrationStatus.TERMINATED,
    }.get(status, OrchestrationStatus.RUNNING)


class Episode:
    """The pure part of one episode: given the loaded state, decide what to write."""

    def __init__(
        self,
        index: FunctionIndex,
        instance: InstanceRow,
        history: list[dict[str, Any]],
        messages: list[InboxMessage],
        now: datetime,
        played: list[str] | None = None,
    ) -> None:
        self.index = index
        self.instance = instance
        self.history = history
        self.played = played if played is not None else [played_event_json(e) for e in history]
        self.messages = messages
        self.now = now
        self.state = EngineState.from_json(instance.engine_state)
        self.out = EpisodeOutcome()
        self._pre_replay_events: int | None = None

    def _append(self, event_type: EventType, event_id: int = -1, **fields: Any) -> dict[str, Any]:
        event = history_event(event_type, self.now, event_id, **fields)
        self.out.new_events.append(event)
        return event

    # -- message application --------------------------------------------------------------

    def run(self) -> EpisodeOutcome:
        inst = self.instance
        status = inst.runtime_status
        if status in RuntimeStatus.TERMINAL:
            self.out.consumed = [m.id for m in self.messages]
            return self.out
        current = [m for m in self.messages if m.execution_id in (None, inst.execution_id)]
        stale = [m.id for m in self.messages if m.execution_id not in (None, inst.execution_id)]
        self.out.consumed.extend(stale)

        terminate = next(
            (m for m in current if m.event_type == EventType.EXECUTION_TERMINATED), None
        )
        if terminate is not None:
            self._terminate(terminate)
            return self.out

        suspended = status == RuntimeStatus.SUSPENDED
        control_events: list[InboxMessage] = []
        for message in current:
            if message.event_type == EventType.EXECUTION_SUSPENDED:
                suspended = True
                control_events.append(message)
            elif message.event_type == EventType.EXECUTION_RESUMED:
                suspended = False
                control_events.append(message)
        if suspended:
            # Only the control events are consumed; everything else waits for resume.
            for message in control_events:
                self._append(EventType(message.event_type), Reason=message.event.get("Reason"))
                self.out.consumed.append(message.id)
            self.out.runtime_status = RuntimeStatus.SUSPENDED
            return self.out

        work = [m for m in current if m.event_type not in CONTROL_EVENTS]
        self.out.consumed.extend(m.id for m in control_events)
        if status == RuntimeStatus.SUSPENDED:
            self.out.runtime_status = RuntimeStatus.RUNNING
        if not work:
            for message in control_events:
                self._append(EventType(message.event_type), Reason=message.event.get("Reason"))
            return self.out
        self._append(EventType.ORCHESTRATOR_STARTED)
        for message in control_events:
            self._append(EventType(message.event_type), Reason=message.event.get("Reason"))
        applied = 0
        for message in work:
            self.out.consumed.append(message.id)
            if self._apply(message):
                applied += 1
        has_started = bool(self.history) or any(
            e["EventType"] == EventType.EXECUTION_STARTED for e in self.out.new_events
        )
        if not has_started:
            # Nothing to replay yet (an event raised before ExecutionStarted is visible): keep
            # the messages for later.
            self.out.consumed = stale
            self.out.new_events = []
            self.out.runtime_status = None
            return self.out
        if applied == 0 and not control_events:
            self.out.new_events = []
            return self.out
        self._replay()
        return self.out

    def _apply(self, message: InboxMessage) -> bool:
        event = message.event
        kind = message.event_type
        if kind == EventType.EXECUTION_STARTED:
            if self.history or any(
                e["EventType"] == EventType.EXECUTION_STARTED for e in self.out.new_events
            ):
                return False
            self._append(
                EventType.EXECUTION_STARTED, **{k: v for k, v in event.items() if k != "EventType"}
            )
            self.out.runtime_status = RuntimeStatus.RUNNING
            return True
        if kind == EventType.EVENT_RAISED:
            self._append(EventType.EVENT_RAISED, Name=event.get("Name"), Input=event.get("Input"))
            return True
        if kind in (
            EventType.TASK_COMPLETED,
            EventType.TASK_FAILED,
            EventType.SUB_ORCHESTRATION_COMPLETED,
            EventType.SUB_ORCHESTRATION_FAILED,
        ):
            seq = int(event["TaskScheduledId"])
            if seq not in self.state.open:
                return False  # at-least-once delivery: a second completion of the same task
            del self.state.open[seq]
            self._append(EventType(kind), **{k: v for k, v in event.items() if k != "EventType"})
            retry = self.state.retries.pop(seq, None)
            if retry is not None and kind in (
                EventType.TASK_FAILED,
                EventType.SUB_ORCHESTRATION_FAILED,
            ):
                self._schedule_retry_timer(retry)
            return True
        if kind == EventType.TIMER_FIRED:
            seq = int(event["TimerId"])
            if seq not in self.state.open:
                return False
            del self.state.open[seq]
            self._append(EventType.TIMER_FIRED, TimerId=seq, FireAt=event.get("FireAt"))
            retry = self.state.retries.pop(seq, None)
            if retry is not None:
                self._reschedule(retry)
            return True
        log.warning("dropping unexpected inbox event %s for %s", kind, self.instance.instance_id)
        return False

    def _schedule_retry_timer(self, retry: RetryState) -> None:
        # DTFx RetryInterceptor: a timer after every failed attempt, even the last one ("dummy"
        # timer, FireAt=now); the SDK raises only after that timer fires.
        seq = self.state.allocate()
        delay = timedelta(
            milliseconds=retry.interval_ms if retry.attempt < retry.max_attempts else 0
        )
        fire_at = self.now + delay
        self._append(EventType.TIMER_CREATED, seq, FireAt=format_timestamp(fire_at))
        self.state.open[seq] = SlotKind.TIMER
        retry.waiting_on_timer = True
        self.state.retries[seq] = retry
        self.out.timers.append((seq, fire_at))

    def _reschedule(self, retry: RetryState) -> None:
        if retry.attempt >= retry.max_attempts:
            return
        retry.attempt += 1
        retry.waiting_on_timer = False
        seq = self.state.allocate()
        self.state.retries[seq] = retry
        if retry.kind == SlotKind.ACTIVITY:
            self._schedule_activity(seq, retry.name, retry.input)
        else:
            self._schedule_child(seq, retry.name, retry.input, retry.instance_id)

    # -- replay and new actions ----------------------------------------------------------

    def _replay(self) -> None:
        inst = self.instance
        entry = self.index.orchestrator(inst.name)
        if entry is None:
            self._fail(
                f"The function '{inst.name}' doesn't exist, is disabled, or is not an orchestrator "
                "function. Additional info:"
                f" {self._known('orchestrator', self.index.orchestrators)}"
            )
            return
        self._pre_replay_events = len(self.out.new_events)
        context_json = orchestration_context_json(
            instance_id=inst.instance_id,
            played=self.played,
            new_events=self.out.new_events,
            input_text=self._input_value(),
            parent_instance_id=inst.parent_instance_id,
        )
        context = OrchestrationTriggerConverter.decode(
            meta.Datum(type="json", value=context_json), trigger_metadata=None
        )
        self.out.ran_orchestrator = True
        started = time.perf_counter()
        try:
            state_json = entry.user_function(context)
            result = parse_orchestrator_state(state_json)
        except ProtocolError as exc:
            self.out.sdk_seconds = time.perf_counter() - started
            self._fail(f"Orchestrator function '{inst.name}' returned an invalid state: {exc}")
            return
        except Exception as exc:
            result = parse_failure(exc)
        self.out.sdk_seconds = time.perf_counter() - started
        try:
            self._apply_actions(result)
        except EpisodeFailure as failure:
            self._fail(str(failure))
            return
        except ProtocolError as exc:
            self._fail(f"Orchestrator function '{inst.name}' returned an invalid action: {exc}")
            return
        if result.custom_status is not None:
            self.out.custom_status_json = json.dumps(result.custom_status)
            self.out.custom_status_set = True
        if result.error is not None:
            self._fail(f"Orchestrator function '{inst.name}' failed: {result.error}")
            return
        if result.is_done:
            continue_as_new = next(
                (
                    leaf
                    for leaf in flatten_actions(result.actions).leaves
                    if leaf.action_type is ActionType.CONTINUE_AS_NEW
                ),
                None,
            )
            if continue_as_new is not None:
                self.out.continue_as_new = True
                self.out.continue_as_new_input = continue_as_new.payload.get("input")
                self._append(
                    EventType.EXECUTION_COMPLETED,
                    OrchestrationStatus=int(OrchestrationStatus.CONTINUED_AS_NEW),
                    Result=continue_as_new.payload.get("input"),
                )
                self._append(EventType.ORCHESTRATOR_COMPLETED)
                self.out.runtime_status = RuntimeStatus.CONTINUED_AS_NEW
                return
            output_json = json.dumps(result.output) if result.has_output else None
            self._complete(RuntimeStatus.COMPLETED, output_json)
            return
        self._append(EventType.ORCHESTRATOR_COMPLETED)
        self.out.runtime_status = RuntimeStatus.RUNNING

    def _input_value(self) -> Any:
        if self.instance.input is None:
            return None
        value = json.loads(self.instance.input)
        # The SDK's get_input() runs df_loads on this, which accepts text or an object; a bare
        # number, list or bool (posted straight to the HTTP API) is handed over as JSON text.
        if isinstance(value, str | dict):
            return value
        return json.dumps(value)

    def _known(self, kind: str, table: dict[str, Any]) -> str:
        names = ", ".join(f"'{e.name}'" for e in table.values())
        return f"The following are the known {kind} functions: {names}."

    def _apply_actions(self, result: OrchestratorResult) -> None:
        leaves = flatten_actions(result.actions).id_consuming
        slots = self.state.slots
        for position, action in enumerate(leaves):
            if position < len(slots):
                seq, kind, name = slots[position]
                if kind != action.slot_kind or name.casefold() != action.slot_name.casefold():
                    raise _nondeterminism(seq, (kind, name), action)
                continue
            seq = self.state.allocate()
            slots.append((seq, action.slot_kind, action.slot_name))
            self._schedule_action(seq, action)
        if len(leaves) < len(slots) and result.error is None:
            seq, kind, name = slots[len(leaves)]
            raise EpisodeFailure(
                "Non-Deterministic workflow detected: A previous execution of this orchestration "
                f"scheduled a {kind} task with sequence ID {seq} and name '{name}', but the "
                "current replay execution hasn't (yet?) scheduled this task. Was a change made "
                "to the orchestrator code after this instance had already started running?"
            )

    def _schedule_action(self, seq: int, action: ScheduledAction) -> None:
        payload = action.payload
        match action.action_type:
            case ActionType.CALL_ACTIVITY | ActionType.CALL_ACTIVITY_WITH_RETRY:
                name = str(payload.get("functionName") or "")
                if self.index.activity(name) is None:
                    raise EpisodeFailure(
                        f"The function '{name}' doesn't exist, is disabled, or is not an activity "
                        "function. Additional info:"
                        f" {self._known('activity', self.index.activities)}"
                    )
                self._schedule_activity(seq, name, payload.get("input"))
                if action.action_type is ActionType.CALL_ACTIVITY_WITH_RETRY:
                    self.state.retries[seq] = self._retry_state(SlotKind.ACTIVITY, name, payload)
            case ActionType.CALL_SUB_ORCHESTRATOR | ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
                name = str(payload.get("functionName") or "")
                if self.index.orchestrator(name) is None:
                    raise EpisodeFailure(
                        f"The function '{name}' doesn't exist, is disabled, or is not an "
                        "orchestrator function. Additional info: "
                        f"{self._known('orchestrator', self.index.orchestrators)}"
                    )
                instance_id = payload.get("instanceId")
                self._schedule_child(seq, name, payload.get("input"), instance_id)
                if action.action_type is ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
                    self.state.retries[seq] = self._retry_state(
                        SlotKind.SUB_ORCHESTRATION, name, payload
                    )
            case ActionType.CREATE_TIMER:
                fire_at_text = str(payload.get("fireAt"))
                fire_at = parse_timestamp(fire_at_text)
                self._append(EventType.TIMER_CREATED, seq, FireAt=fire_at_text)
                if not payload.get("isCanceled"):
                    self.state.open[seq] = SlotKind.TIMER
                    self.out.timers.append((seq, fire_at))
            case ActionType.CONTINUE_AS_NEW:
                pass
            case ActionType.CALL_HTTP:
                raise EpisodeFailure("devhost does not emulate call_http (BuiltIn::HttpActivity)")
            case _:
                raise EpisodeFailure(
                    "devhost does not emulate durable entities (call_entity/signal_entity)"
                )

    def _retry_state(self, kind: str, name: str, payload: dict[str, Any]) -> RetryState:
        options = payload.get("retryOptions") or {}
        return RetryState(
            kind=kind,
            name=name,
            input=payload.get("input"),
            instance_id=payload.get("instanceId"),
            max_attempts=int(options.get("maxNumberOfAttempts", 1)),
            interval_ms=int(options.get("firstRetryIntervalInMilliseconds", 0)),
        )

    def _schedule_activity(self, seq: int, name: str, input_text: str | None) -> None:
        self._append(EventType.TASK_SCHEDULED, seq, Name=name, Version="", Input=input_text)
        self.state.open[seq] = SlotKind.ACTIVITY
        self.out.activity_tasks.append((seq, name, input_text))

    def _schedule_child(
        self, seq: int, name: str, input_text: str | None, instance_id: str | None
    ) -> None:
        child_id = instance_id or f"{self.instance.execution_id}:{seq}"
        self._append(
            EventType.SUB_ORCHESTRATION_CREATED,
            seq,
            Name=name,
            Version="",
            InstanceId=child_id,
            Input=input_text,
        )
        self.state.open[seq] = SlotKind.SUB_ORCHESTRATION
        # The shim passes the action's input (JSON text) as a string object: the child's
        # context input is that string, which the SDK's get_input() decodes.
        child_input = json.dumps(input_text) if input_text is not None else None
        self.out.children.append(ChildStart(child_id, name, child_input, seq))

    # -- terminal transitions ------------------------------------------------------------

    def _fail(self, message: str) -> None:
        # Nothing a failed replay scheduled is kept; events from applying messages stay.
        self.out.activity_tasks.clear()
        self.out.timers.clear()
        self.out.children.clear()
        if self._pre_replay_events is not None:
            del self.out.new_events[self._pre_replay_events :]
        self._complete(
            RuntimeStatus.FAILED,
            json.dumps(message),
            failure={"ErrorType": "OrchestrationFailure", "ErrorMessage": message},
        )

    def _complete(
        self, status: str, output_json: str | None, failure: dict[str, Any] | None = None
    ) -> None:
        fields: dict[str, Any] = {
            "OrchestrationStatus": _status_for_output(status),
            "Result": output_json,
        }
        if failure is not None:
            fields["FailureDetails"] = failure
        self._append(EventType.EXECUTION_COMPLETED, **fields)
        self._append(EventType.ORCHESTRATOR_COMPLETED)
        self.out.runtime_status = status
        self.out.output_json = output_json
        self.out.output_set = True
        self.out.completed = True
        self._notify_parent(status, output_json)

    def _terminate(self, message: InboxMessage) -> None:
        reason = message.event.get("Input")
        self.out.consumed = [m.id for m in self.messages]
        self._append(EventType.ORCHESTRATOR_STARTED)
        self._append(EventType.EXECUTION_TERMINATED, Input=reason)
        output_json = json.dumps(reason)
        self._append(
            EventType.EXECUTION_COMPLETED,
            OrchestrationStatus=int(OrchestrationStatus.TERMINATED),
            Result=output_json,
        )
        self._append(EventType.ORCHESTRATOR_COMPLETED)
        self.out.runtime_status = RuntimeStatus.TERMINATED
        self.out.output_json = output_json
        self.out.output_set = True
        self.out.completed = True
        self._notify_parent(RuntimeStatus.TERMINATED, output_json)

    def _notify_parent(self, status: str, output_json: str | None) -> None:
        inst = self.instance
        if inst.parent_instance_id is None or inst.parent_task_id is None:
            return
        if status == RuntimeStatus.COMPLETED:
            self.out.parent_event = {
                "EventType": int(EventType.SUB_ORCHESTRATION_COMPLETED),
                "TaskScheduledId": inst.parent_task_id,
                "Result": output_json,
            }
        else:
            reason = json.loads(output_json) if output_json else status
            self.out.parent_event = {
                "EventType": int(EventType.SUB_ORCHESTRATION_FAILED),
                "TaskScheduledId": inst.parent_task_id,
                "Reason": f"Sub-orchestration '{inst.instance_id}' {status.lower()}: {reason}",
                "Details": None,
            }


WorkCallback = Callable[[list[dict[str, Any]]], None]


class OrchestrationEngine:
    """Dispatches episodes: per-instance serialization, many instances in parallel."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        index: FunctionIndex,
        *,
        host_id: uuid.UUID,
        concurrency: int,
        activity_lease_seconds: float,
        on_activity_tasks: WorkCallback,
        invocations: InvocationLog,
        poll_seconds: float = 1.0,
    ) -> None:
        self.pool = pool
        self.index = index
        self.host_id = host_id
        self.concurrency = concurrency
        self.activity_lease_seconds = activity_lease_seconds
        self.on_activity_tasks = on_activity_tasks
        self.invocations = invocations
        self.poll_seconds = poll_seconds
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._rerun: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._history_cache: dict[str, tuple[str, list[dict[str, Any]], list[str]]] = {}
        self.stats = {"episodes": 0, "sdk_seconds": 0.0, "episode_seconds": 0.0}

    async def start(self) -> None:
        self._tasks.append(
            asyncio.create_task(self._poll_loop(), name="devhost-orchestration-poll")
        )
        for n in range(self.concurrency):
            self._tasks.append(
                asyncio.create_task(self._worker(), name=f"devhost-orchestrator-{n}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def notify(self, instance_id: str) -> None:
        if instance_id in self._running:
            self._rerun.add(instance_id)
        elif instance_id not in self._queued:
            self._queued.add(instance_id)
            self._queue.put_nowait(instance_id)

    def notify_at(self, instance_id: str, when: datetime) -> None:
        delay = max(0.0, (when - utcnow()).total_seconds())
        asyncio.get_running_loop().call_later(delay + 0.001, self.notify, instance_id)

    def poke(self) -> None:
        self._wake.set()

    async def _poll_loop(self) -> None:
        while True:
            try:
                next_due = await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("orchestration poll failed")
                next_due = None
            timeout = self.poll_seconds
            if next_due is not None:
                timeout = min(timeout, max(0.0, (next_due - utcnow()).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _poll_once(self) -> datetime | None:
        now = utcnow()
        async with self.pool.connection() as conn:
            ready = await (
                await conn.execute(
                    f"""
                    SELECT DISTINCT m.instance_id FROM {SCHEMA}.inbox m
                    LEFT JOIN {SCHEMA}.instances i USING (instance_id)
                    WHERE m.visible_at <= %s
                      AND (i.runtime_status IS DISTINCT FROM 'Suspended'
                           OR (m.event->>'EventType')::int IN (3, 19, 20))
                    LIMIT 2000
                    """,
                    (now,),
                )
            ).fetchall()
            upcoming = await (
                await conn.execute(
                    f"SELECT min(visible_at) FROM {SCHEMA}.inbox WHERE visible_at > %s", (now,)
                )
            ).fetchone()
        for (instance_id,) in ready:
            self.notify(instance_id)
        return upcoming[0] if upcoming else None

    async def _worker(self) -> None:
        while True:
            instance_id = await self._queue.get()
            self._queued.discard(instance_id)
            self._running.add(instance_id)
            try:
                await self.run_episode(instance_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("episode for %s failed; it will be retried", instance_id)
                self._history_cache.pop(instance_id, None)
                await asyncio.sleep(0.5)
                self._rerun.add(instance_id)
            finally:
                self._running.discard(instance_id)
                if instance_id in self._rerun:
                    self._rerun.discard(instance_id)
                    self.notify(instance_id)

    async def run_episode(self, instance_id: str) -> None:
        began = time.perf_counter()
        now = utcnow()
        new_activity_rows: list[dict[str, Any]] = []
        notify_after: list[str] = []
        timers_after: list[tuple[str, datetime]] = []
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    f"""
                    SELECT instance_id, name, execution_id, runtime_status, input,
                           parent_instance_id, parent_execution_id, parent_task_id,
                           history_len, engine_state, episodes
                    FROM {SCHEMA}.instances WHERE instance_id = %s FOR UPDATE SKIP LOCKED
                    """,
                    (instance_id,),
                )
            ).fetchone()
            messages_rows = await (
                await conn.execute(
                    f"SELECT id, execution_id, event FROM {SCHEMA}.inbox"
                    " WHERE instance_id = %s AND visible_at <= %s ORDER BY id",
                    (instance_id, now),
                )
            ).fetchall()
            if row is None:
                exists = await (
                    await conn.execute(
                        f"SELECT 1 FROM {SCHEMA}.instances WHERE instance_id = %s", (instance_id,)
                    )
                ).fetchone()
                if exists is None and messages_rows:
                    # Messages for a purged or never-created instance.
                    await conn.execute(
                        f"DELETE FROM {SCHEMA}.inbox WHERE id = ANY(%s)",
                        ([r[0] for r in messages_rows],),
                    )
                return
            if not messages_rows:
                return
            instance = InstanceRow(*row)
            history, played = await self._load_history(conn, instance)
            messages = [InboxMessage(r[0], r[1], r[2]) for r in messages_rows]
            episode = Episode(self.index, instance, history, messages, now, played)
            out = episode.run()
            await self._write(
                conn, instance, episode, out, now, new_activity_rows, notify_after, timers_after
            )
        self.stats["episodes"] += 1
        self.stats["sdk_seconds"] += out.sdk_seconds
        elapsed = time.perf_counter() - began
        self.stats["episode_seconds"] += elapsed
        if out.ran_orchestrator:
            self.invocations.record(
                function=instance.name,
                trigger="orchestrationTrigger",
                instance_id=instance_id,
                duration_ms=elapsed * 1000,
                outcome=out.runtime_status or instance.runtime_status,
                error=out.output_json if out.runtime_status == RuntimeStatus.FAILED else None,
            )
            if out.runtime_status == RuntimeStatus.FAILED:
                log.warning(
                    "orchestration %s (%s) failed: %s", instance_id, instance.name, out.output_json
                )
        if new_activity_rows:
            self.on_activity_tasks(new_activity_rows)
        for target in notify_after:
            self.notify(target)
        for target, when in timers_after:
            self.notify_at(target, when)

    async def _load_history(
        self, conn: Any, instance: InstanceRow
    ) -> tuple[list[dict[str, Any]], list[str]]:
        cached = self._history_cache.get(instance.instance_id)
        if (
            cached is not None
            and cached[0] == instance.execution_id
            and len(cached[1]) == instance.history_len
        ):
            return cached[1], cached[2]
        rows = await (
            await conn.execute(
                f"SELECT event FROM {SCHEMA}.history WHERE instance_id = %s ORDER BY idx",
                (instance.instance_id,),
            )
        ).fetchall()
        history = [r[0] for r in rows]
        if len(history) != instance.history_len:
            raise RuntimeError(
                f"history of {instance.instance_id} has {len(history)} events, expected"
                f" {instance.history_len}"
            )
        return history, [played_event_json(e) for e in history]

    async def _write(
        self,
        conn: Any,
        instance: InstanceRow,
        episode: Episode,
        out: EpisodeOutcome,
        now: datetime,
        new_activity_rows: list[dict[str, Any]],
        notify_after: list[str],
        timers_after: list[tuple[str, datetime]],
    ) -> None:
        iid = instance.instance_id
        if out.consumed:
            await conn.execute(f"DELETE FROM {SCHEMA}.inbox WHERE id = ANY(%s)", (out.consumed,))
        if out.continue_as_new:
            await self._continue_as_new(conn, instance, out, now, notify_after)
            self._history_cache.pop(iid, None)
            return
        history = episode.history
        played = episode.played
        if out.new_events:
            start = instance.history_len
            cur = conn.cursor()
            await cur.executemany(
                f"INSERT INTO {SCHEMA}.history (instance_id, idx, event) VALUES (%s, %s, %s)",
                [(iid, start + n, jsonb(e)) for n, e in enumerate(out.new_events)],
            )
            history = history + out.new_events
            played = played + [played_event_json(e) for e in out.new_events]
        history_len = len(history)
        self._history_cache[iid] = (instance.execution_id, history, played)
        if len(self._history_cache) > 5000:
            self._history_cache.pop(next(iter(self._history_cache)))
        if out.activity_tasks:
            lease_until = now + timedelta(seconds=self.activity_lease_seconds)
            cur = conn.cursor()
            await cur.executemany(
                f"""
                INSERT INTO {SCHEMA}.activity_tasks
                    (instance_id, execution_id, task_id, name, input, created_at, locked_by,
                     locked_until, dequeue_count)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1)
                RETURNING id
                """,
                [
                    (
                        iid,
                        instance.execution_id,
                        seq,
                        name,
                        input_text,
                        now,
                        self.host_id,
                        lease_until,
                    )
                    for seq, name, input_text in out.activity_tasks
                ],
                returning=True,
            )
            ids: list[int] = []
            while True:
                fetched = await cur.fetchone()
                if fetched is not None:
                    ids.append(fetched[0])
                if not cur.nextset():
                    break
            for task_row_id, (seq, name, input_text) in zip(ids, out.activity_tasks, strict=True):
                new_activity_rows.append(
                    {
                        "id": task_row_id,
                        "instance_id": iid,
                        "execution_id": instance.execution_id,
                        "task_id": seq,
                        "name": name,
                        "input": input_text,
                        "dequeue_count": 1,
                    }
                )
        inbox_rows: list[tuple[str, str | None, Any, datetime]] = []
        for seq, fire_at in out.timers:
            event = {
                "EventType": int(EventType.TIMER_FIRED),
                "TimerId": seq,
                "FireAt": format_timestamp(fire_at),
            }
            inbox_rows.append((iid, instance.execution_id, jsonb(event), fire_at))
            timers_after.append((iid, fire_at))
        for child in out.children:
            await self._start_child(conn, instance, child, now, inbox_rows, notify_after)
        if out.parent_event is not None and instance.parent_instance_id is not None:
            inbox_rows.append(
                (
                    instance.parent_instance_id,
                    instance.parent_execution_id,
                    jsonb(out.parent_event),
                    now,
                )
            )
            notify_after.append(instance.parent_instance_id)
        if inbox_rows:
            cur = conn.cursor()
            await cur.executemany(
                f"INSERT INTO {SCHEMA}.inbox (instance_id, execution_id, event, visible_at)"
                " VALUES (%s, %s, %s, %s)",
                inbox_rows,
            )
        status = out.runtime_status or instance.runtime_status
        await conn.execute(
            f"""
            UPDATE {SCHEMA}.instances SET
                runtime_status = %s,
                output = CASE WHEN %s THEN %s ELSE output END,
                custom_status = CASE WHEN %s THEN %s ELSE custom_status END,
                last_updated_at = %s,
                completed_at = CASE WHEN %s THEN %s ELSE completed_at END,
                history_len = %s,
                episodes = episodes + %s,
                engine_state = %s
            WHERE instance_id = %s
            """,
            (
                status,
                out.output_set,
                out.output_json,
                out.custom_status_set,
                out.custom_status_json,
                now,
                out.completed,
                now,
                history_len,
                1 if out.ran_orchestrator else 0,
                jsonb(episode.state.to_json()),
                iid,
            ),
        )
        if out.completed:
            # Work still queued for a finished execution can never be applied.
            await conn.execute(
                f"DELETE FROM {SCHEMA}.activity_tasks WHERE instance_id = %s AND execution_id = %s"
                " AND locked_by IS NULL",
                (iid, instance.execution_id),
            )

    async def _start_child(
        self,
        conn: Any,
        parent: InstanceRow,
        child: ChildStart,
        now: datetime,
        inbox_rows: list[tuple[str, str | None, Any, datetime]],
        notify_after: list[str],
    ) -> None:
        execution_id = uuid.uuid4().hex
        existing = await (
            await conn.execute(
                f"SELECT runtime_status FROM {SCHEMA}.instances WHERE instance_id = %s FOR UPDATE",
                (child.instance_id,),
            )
        ).fetchone()
        if existing is not None and existing[0] not in RuntimeStatus.TERMINAL:
            failed = {
                "EventType": int(EventType.SUB_ORCHESTRATION_FAILED),
                "TaskScheduledId": child.parent_task_id,
                "Reason": f"An orchestration with instance ID '{child.instance_id}' is already "
                f"{existing[0].lower()}.",
                "Details": None,
            }
            inbox_rows.append((parent.instance_id, parent.execution_id, jsonb(failed), now))
            notify_after.append(parent.instance_id)
            return
        await reset_instance(
            conn,
            instance_id=child.instance_id,
            name=child.name,
            execution_id=execution_id,
            input_json=child.input_json,
            now=now,
            parent=(parent.instance_id, parent.execution_id, child.parent_task_id),
        )
        started = execution_started_event(
            name=child.name,
            instance_id=child.instance_id,
            execution_id=execution_id,
            input_json=child.input_json,
            parent=(parent.name, parent.instance_id, parent.execution_id, child.parent_task_id),
        )
        inbox_rows.append((child.instance_id, execution_id, jsonb(started), now))
        notify_after.append(child.instance_id)

    async def _continue_as_new(
        self,
        conn: Any,
        instance: InstanceRow,
        out: EpisodeOutcome,
        now: datetime,
        notify_after: list[str],
    ) -> None:
        execution_id = uuid.uuid4().hex
        input_text = out.continue_as_new_input
        input_json = json.dumps(input_text) if input_text is not None else None
        await conn.execute(
            f"DELETE FROM {SCHEMA}.history WHERE instance_id = %s", (instance.instance_id,)
        )
        await conn.execute(
            f"""
            UPDATE {SCHEMA}.instances SET execution_id = %s, runtime_status = %s, input = %s,
                output = NULL, last_updated_at = %s, history_len = 0, episodes = episodes + 1,
                engine_state = '{{}}'::jsonb,
                custom_status = CASE WHEN %s THEN %s ELSE custom_status END
            WHERE instance_id = %s
            """,
            (
                execution_id,
                RuntimeStatus.CONTINUED_AS_NEW,
                input_json,
                now,
                out.custom_status_set,
                out.custom_status_json,
                instance.instance_id,
            ),
        )
        parent = None
        if instance.parent_instance_id is not None and instance.parent_task_id is not None:
            parent = (
                "",
                instance.parent_instance_id,
                instance.parent_execution_id,
                instance.parent_task_id,
            )
        started = execution_started_event(
            name=instance.name,
            instance_id=instance.instance_id,
            execution_id=execution_id,
            input_json=input_json,
            parent=parent,
        )
        await conn.execute(
            f"INSERT INTO {SCHEMA}.inbox (instance_id, execution_id, event, visible_at) VALUES"
            " (%s, %s, %s, %s)",
            (instance.instance_id, execution_id, jsonb(started), now),
        )
        notify_after.append(instance.instance_id)


def execution_started_event(
    *,
    name: str,
    instance_id: str,
    execution_id: str,
    input_json: str | None,
    parent: tuple[str, str, str | None, int] | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "EventType": int(EventType.EXECUTION_STARTED),
        "Name": name,
        # The 1.7 SDK requires the key (`_extract_version_from_history`).
        "Version": "",
        "Input": input_json,
        "OrchestrationInstance": {"InstanceId": instance_id, "ExecutionId": execution_id},
        "ParentInstance": None,
        "Tags": None,
    }
    if parent is not None:
        parent_name, parent_id, parent_execution, task_id = parent
        event["ParentInstance"] = {
            "Name": parent_name,
            "Version": "",
            "OrchestrationInstance": {"InstanceId": parent_id, "ExecutionId": parent_execution},
            "TaskScheduleId": task_id,
        }
    return event


async def reset_instance(
    conn: Any,
    *,
    instance_id: str,
    name: str,
    execution_id: str,
    input_json: str | None,
    now: datetime,
    parent: tuple[str, str | None, int] | None = None,
) -> None:
    """Create the instance row, or start a finished instance over (a new execution)."""
    parent_id, parent_execution, parent_task = parent if parent else (None, None, None)
    await conn.execute(f"DELETE FROM {SCHEMA}.history WHERE instance_id = %s", (instance_id,))
    await conn.execute(
        f"""
        INSERT INTO {SCHEMA}.instances
            (instance_id, name, execution_id, runtime_status, input, output, custom_status,
             created_at, last_updated_at, completed_at, parent_instance_id, parent_execution_id,
             parent_task_id, history_len, episodes, engine_state)
        VALUES (%s, %s, %s, %s, %s, NULL, NULL, %s, %s, NULL, %s, %s, %s, 0, 0, '{{}}'::jsonb)
        ON CONFLICT (instance_id) DO UPDATE SET
            name = EXCLUDED.name, execution_id = EXCLUDED.execution_id,
            runtime_status = EXCLUDED.runtime_status, input = EXCLUDED.input, output = NULL,
            custom_status = NULL, created_at = EXCLUDED.created_at,
            last_updated_at = EXCLUDED.last_updated_at, completed_at = NULL,
            parent_instance_id = EXCLUDED.parent_instance_id,
            parent_execution_id = EXCLUDED.parent_execution_id,
            parent_task_id = EXCLUDED.parent_task_id, history_len = 0, episodes = 0,
            engine_state = '{{}}'::jsonb
        """,
        (
            instance_id,
            name,
            execution_id,
            RuntimeStatus.PENDING,
            input_json,
            now,
            now,
            parent_id,
            parent_execution,
            parent_task,
        ),
    )
