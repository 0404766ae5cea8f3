"""Load a v2-model `function_app.py` and index its functions by trigger, as the worker does."""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import sys
import threading
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.functions import _abc as func_abc
from azure.functions.decorators.function_app import FunctionRegister

from devhost.routing import RouteTemplate

log = logging.getLogger(__name__)

UserFunction = Callable[..., Any]


class AppLoadError(Exception):
    """The app directory does not hold a loadable v2-model function app."""


@dataclass(frozen=True)
class Binding:
    type: str
    name: str
    direction: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class FunctionEntry:
    """One indexed function: its name, bindings and the callable the worker would invoke."""

    name: str
    trigger: Binding
    bindings: tuple[Binding, ...]
    user_function: UserFunction
    directory: str

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def client_param(self) -> str | None:
        for binding in self.bindings:
            if binding.type == "durableClient":
                return binding.name
        return None

    @property
    def output_bindings(self) -> list[Binding]:
        return [b for b in self.bindings if b.direction == "OUT" and b.name != "$return"]

    @property
    def wants_context(self) -> bool:
        bound = {b.name for b in self.bindings}
        try:
            params = inspect.signature(self.user_function).parameters
        except (TypeError, ValueError):
            return False
        return "context" in params and "context" not in bound

    def annotation_of(self, param: str) -> Any:
        function = inspect.unwrap(self.user_function)
        try:
            hints = typing.get_type_hints(function)
        except Exception:
            # Unresolvable string annotations: fall back to whatever the signature holds.
            try:
                parameter = inspect.signature(function).parameters.get(param)
            except (TypeError, ValueError):
                return None
            if parameter is None or parameter.annotation is inspect.Parameter.empty:
                return None
            return parameter.annotation
        return hints.get(param)


@dataclass(frozen=True)
class HttpFunction:
    entry: FunctionEntry
    route: RouteTemplate
    methods: frozenset[str] | None
    streaming: bool


@dataclass
class FunctionIndex:
    app_dir: Path
    http: list[HttpFunction] = field(default_factory=list)
    orchestrators: dict[str, FunctionEntry] = field(default_factory=dict)
    activities: dict[str, FunctionEntry] = field(default_factory=dict)
    entities: dict[str, FunctionEntry] = field(default_factory=dict)
    timers: list[FunctionEntry] = field(default_factory=list)
    service_bus: list[FunctionEntry] = field(default_factory=list)
    unsupported: list[FunctionEntry] = field(default_factory=list)

    def orchestrator(self, name: str) -> FunctionEntry | None:
        return self.orchestrators.get(name.casefold())

    def activity(self, name: str) -> FunctionEntry | None:
        return self.activities.get(name.casefold())

    def describe(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for http in self.http:
            methods = sorted(http.methods) if http.methods else ["*"]
            rows.append(
                {
                    "name": http.entry.name,
                    "trigger": "httpTrigger",
                    "route": http.route.template,
                    "methods": methods,
                }
            )
        for kind, table in (
            ("orchestrationTrigger", self.orchestrators),
            ("activityTrigger", self.activities),
            ("entityTrigger", self.entities),
        ):
            rows.extend({"name": e.name, "trigger": kind} for e in table.values())
        rows.extend(
            {
                "name": e.name,
                "trigger": "timerTrigger",
                "schedule": e.trigger.properties.get("schedule"),
            }
            for e in self.timers
        )
        rows.extend(
            {
                "name": e.name,
                "trigger": "serviceBusTrigger",
                "queue": e.trigger.properties.get("queueName"),
            }
            for e in self.service_bus
        )
        return rows


class InvocationContext(func_abc.Context):
    """The `context` argument the Python worker passes to functions that declare one."""

    class _Trace(func_abc.TraceContext):
        def __init__(self, trace_parent: str) -> None:
            self._trace_parent = trace_parent

        @property
        def trace_state(self) -> str:
            return ""

        @property
        def trace_parent(self) -> str:
            return self._trace_parent

        @property
        def attributes(self) -> dict[str, str]:
            return {}

    class _Retry(func_abc.RetryContext):
        @property
        def retry_count(self) -> int:
            return 0

        @property
        def max_retry_count(self) -> int:
            return 0

        @property
        def exception(self) -> func_abc.RpcException:
            raise AttributeError("no retry exception: devhost does not retry triggers")

    def __init__(self, function_name: str, function_directory: str, invocation_id: str) -> None:
        self._function_name = function_name
        self._function_directory = function_directory
        self._invocation_id = invocation_id
        self._local = threading.local()
        trace_id = uuid.uuid4().hex
        self._trace = self._Trace(f"00-{trace_id}-{trace_id[:16]}-01")

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return self._Retry()


def _find_app(module: Any) -> FunctionRegister:
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if not apps:
        raise AppLoadError(
            f"{module.__file__} defines no azure.functions.FunctionApp (or DFApp) at module level"
        )
    if len(apps) > 1:
        raise AppLoadError(f"{module.__file__} defines more than one FunctionApp")
    return apps[0]


def import_function_app(app_dir: Path, script_name: str = "function_app.py") -> FunctionRegister:
    script = (app_dir / script_name).resolve()
    if not script.is_file():
        raise AppLoadError(f"no {script_name} in {app_dir}")
    app_root = str(script.parent)
    if app_root not in sys.path:
        sys.path.insert(0, app_root)
    module_name = script.stem
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return _find_app(module)


def _bindings_of(function: Any) -> tuple[Binding, ...]:
    raw = json.loads(function.get_function_json())
    bindings = []
    for item in raw.get("bindings", []):
        props = {k: v for k, v in item.items() if k not in ("type", "name", "direction")}
        bindings.append(
            Binding(
                type=str(item.get("type")),
                name=str(item.get("name")),
                direction=str(item.get("direction", "IN")).upper(),
                properties=props,
            )
        )
    return tuple(bindings)


def _is_streaming(entry: FunctionEntry) -> bool:
    trigger_param = entry.trigger.name
    annotation = entry.annotation_of(trigger_param)
    module = getattr(annotation, "__module__", "") or ""
    return (
        module.startswith("azurefunctions.extensions.http")
        or module.startswith("fastapi")
        or (module.startswith("starlette"))
    )


def index_functions(app: FunctionRegister, app_dir: Path, route_prefix: str) -> FunctionIndex:
    index = FunctionIndex(app_dir=app_dir)
    # azure-functions 1.26 raises on a second get_functions() call: index exactly once.
    for function in app.get_functions():
        bindings = _bindings_of(function)
        function_trigger = function.get_trigger()
        name = function.get_function_name()
        if function_trigger is None or name is None:
            raise AppLoadError(f"function {name or function!r} has no trigger")
        trigger_name = function_trigger.name
        trigger = next(b for b in bindings if b.name == trigger_name and b.direction == "IN")
        entry = FunctionEntry(
            name=name,
            trigger=trigger,
            bindings=bindings,
            user_function=function.get_user_function(),
            directory=str(app_dir),
        )
        match trigger.type:
            case "httpTrigger":
                methods = trigger.properties.get("methods")
                route = trigger.properties.get("route") or entry.name
                index.http.append(
                    HttpFunction(
                        entry=entry,
                        route=RouteTemplate.compile(route, route_prefix),
                        methods=frozenset(m.upper() for m in methods) if methods else None,
                        streaming=_is_streaming(entry),
                    )
                )
            case "orchestrationTrigger":
                alias = trigger.properties.get("orchestration") or entry.name
                index.orchestrators[str(alias).casefold()] = entry
            case "activityTrigger":
                alias = trigger.properties.get("activity") or entry.name
                index.activities[str(alias).casefold()] = entry
            case "entityTrigger":
                alias = trigger.properties.get("entityName") or entry.name
                index.entities[str(alias).casefold()] = entry
            case "timerTrigger":
                index.timers.append(entry)
            case "serviceBusTrigger":
                if trigger.properties.get("topicName"):
                    index.unsupported.append(entry)
                else:
                    index.service_bus.append(entry)
            case _:
                index.unsupported.append(entry)
    # Literal segments beat parameters, as in ASP.NET routing: most specific route first.
    index.http.sort(key=lambda h: h.route.precedence)
    for entry in index.unsupported:
        log.warning(
            "function %s has a %s trigger, which devhost does not emulate; it will not run",
            entry.name,
            entry.trigger.type,
        )
    return index


def load_app(app_dir: Path, route_prefix: str) -> FunctionIndex:
    app = import_function_app(app_dir)
    return index_functions(app, app_dir, route_prefix)


__all__ = [
    "AppLoadError",
    "Binding",
    "FunctionEntry",
    "FunctionIndex",
    "HttpFunction",
    "InvocationContext",
    "load_app",
]
