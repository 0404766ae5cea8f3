"""The model port: structured generation behind one interface.

Providers: OpenAI, Azure OpenAI and Anthropic (their adapters arrive with the BYOK issue)
and the offline model (the default; no key, no network). Every call names a task and a
pydantic output schema; whatever a provider returns is validated against that schema
before anyone sees it. Tools are opt-in per request from an allowlist, and every result
carries its token usage and cost so the router can enforce a tenant's ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

OutputT = TypeVar("OutputT", bound=BaseModel)


class Task(StrEnum):
    DRAFT_EMAIL = "draft_email"
    CLASSIFY_REPLY = "classify_reply"


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call; only names on the router's allowlist are ever offered."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class GenerationRequest(Generic[OutputT]):
    task: Task
    output_schema: type[OutputT]
    instructions: str
    context: dict[str, Any]
    tools: tuple[ToolSpec, ...] = ()
    max_output_tokens: int = 1024
    temperature: float = 0.2


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0")


@dataclass(frozen=True)
class GenerationResult(Generic[OutputT]):
    output: OutputT
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)


class ModelError(Exception):
    """A provider could not produce a valid answer; the router asks the next one."""


class ModelProvider(Protocol):
    name: str

    def generate(self, request: GenerationRequest[OutputT]) -> GenerationResult[OutputT]:
        """One structured answer, validated against request.output_schema."""
        ...
