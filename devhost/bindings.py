"""Calling user functions with their bindings, as the Python worker does."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func

from devhost.app_loader import Binding, FunctionEntry, InvocationContext

log = logging.getLogger(__name__)

QueueSend = Callable[[str, list[Any]], Awaitable[None]]


class OutputValue(func.Out[Any]):
    """A `func.Out[T]` parameter: the value is collected after the function returns."""

    def __init__(self) -> None:
        self._value: Any = None
        self.is_set = False

    def set(self, val: Any) -> None:
        self._value = val
        self.is_set = True

    def get(self) -> Any:
        return self._value


async def call_function(
    entry: FunctionEntry,
    arguments: dict[str, Any],
    *,
    executor: ThreadPoolExecutor,
    client_binding: Callable[[], str],
    queue_send: QueueSend | None,
) -> Any:
    """Invoke `entry` with trigger `arguments` plus its input/output bindings; return its result."""
    kwargs = dict(arguments)
    outputs: dict[str, tuple[Binding, OutputValue]] = {}
    for binding in entry.bindings:
        if binding.name in kwargs or binding.name == "$return":
            continue
        if binding.type == "durableClient":
            kwargs[binding.name] = client_binding()
        elif binding.direction == "OUT":
            holder = OutputValue()
            outputs[binding.name] = (binding, holder)
            kwargs[binding.name] = holder
    if entry.wants_context and "context" not in kwargs:
        kwargs["context"] = InvocationContext(entry.name, entry.directory, str(uuid.uuid4()))
    if entry.is_async:
        result = await entry.user_function(**kwargs)
    else:
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, entry.user_function, **kwargs)
        result = await loop.run_in_executor(executor, call)
    for binding, holder in outputs.values():
        if not holder.is_set:
            continue
        if binding.type == "serviceBus" and queue_send is not None:
            queue = str(binding.properties.get("queueName") or binding.properties.get("topicName"))
            value = holder.get()
            await queue_send(queue, value if isinstance(value, list) else [value])
        else:
            log.warning(
                "output binding %s (%s) of %s is not emulated; its value was dropped",
                binding.name,
                binding.type,
                entry.name,
            )
    return result
