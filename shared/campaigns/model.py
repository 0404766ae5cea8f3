"""Sequence rules with no I/O: the graph must be sound and every template resolvable."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.campaigns.schemas import BranchStep, DelayStep, EmailStep, SendWindow, SequenceCreate

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Always available to templates: the prospect, the company and the sender.
BUILTIN_VARIABLES = frozenset(
    {
        "first_name",
        "last_name",
        "full_name",
        "title",
        "company_name",
        "company_domain",
        "sender_name",
        "sender_title",
        "sender_company",
        "unsubscribe_url",
        "postal_address",
    }
)
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
VARIABLE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class SequenceProblem:
    location: str
    message: str


def template_variables(template: str) -> list[str]:
    return [match.group(1) for match in PLACEHOLDER.finditer(template)]


def _successors(step: EmailStep | DelayStep | BranchStep) -> list[str | None]:
    if isinstance(step, BranchStep):
        return [step.then, step.otherwise]
    return [step.next]


def sequence_problems(sequence: SequenceCreate) -> list[SequenceProblem]:
    """Everything wrong with a sequence, each with where it is; empty when it can run."""
    problems: list[SequenceProblem] = []
    steps = sequence.steps
    by_id: dict[str, EmailStep | DelayStep | BranchStep] = {}
    for index, step in enumerate(steps):
        if step.id in by_id:
            problems.append(SequenceProblem(f"steps[{index}].id", f"duplicate step id {step.id!r}"))
        by_id[step.id] = step
    for index, step in enumerate(steps):
        for target in _successors(step):
            if target is not None and target not in by_id:
                problems.append(
                    SequenceProblem(f"steps[{index}]", f"points to unknown step {target!r}")
                )
    if problems:
        return problems
    problems += _graph_problems(steps, by_id)
    known = BUILTIN_VARIABLES | set(sequence.variables)
    for index, step in enumerate(steps):
        if not isinstance(step, EmailStep):
            continue
        for field_name, template in (("subject", step.subject), ("body", step.body)):
            for name in template_variables(template):
                if not VARIABLE.fullmatch(name):
                    problems.append(
                        SequenceProblem(
                            f"steps[{index}].{field_name}", f"malformed placeholder {{{{{name}}}}}"
                        )
                    )
                elif name not in known:
                    problems.append(
                        SequenceProblem(
                            f"steps[{index}].{field_name}",
                            f"unknown variable {name!r}; declare it in variables or use one of "
                            f"{', '.join(sorted(BUILTIN_VARIABLES))}",
                        )
                    )
    if not any(isinstance(step, EmailStep) for step in steps):
        problems.append(SequenceProblem("steps", "a sequence needs at least one email step"))
    elif not isinstance(steps[0], EmailStep):
        problems.append(SequenceProblem("steps[0]", "a sequence starts with an email step"))
    return problems


def _graph_problems(
    steps: Sequence[EmailStep | DelayStep | BranchStep],
    by_id: dict[str, EmailStep | DelayStep | BranchStep],
) -> list[SequenceProblem]:
    """Unreachable steps and loops (a sequence must end for every prospect)."""
    problems: list[SequenceProblem] = []
    index_of = {step.id: index for index, step in enumerate(steps)}
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(step_id: str) -> None:
        state[step_id] = "visiting"
        for target in _successors(by_id[step_id]):
            if target is None:
                continue
            if state.get(target) == "visiting":
                problems.append(
                    SequenceProblem(f"steps[{index_of[step_id]}]", f"loops back to step {target!r}")
                )
            elif target not in state:
                visit(target)
        state[step_id] = "done"

    visit(steps[0].id)
    for step in steps:
        if step.id not in state:
            problems.append(
                SequenceProblem(
                    f"steps[{index_of[step.id]}]",
                    f"step {step.id!r} is unreachable from the first step",
                )
            )
    return problems


def render(template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Fill placeholders; returns the text and the names that had no value (left as is)."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is None or value == "":
            missing.append(name)
            return match.group(0)
        return value

    return PLACEHOLDER.sub(fill, template), missing


def next_window_opening(now: datetime, window: SendWindow) -> datetime | None:
    """None when `now` (aware) is inside the send window; else when it next opens, in UTC."""
    zone = ZoneInfo(window.time_zone)
    local = now.astimezone(zone)
    days = {WEEKDAYS.index(day.value) for day in window.days}
    # From yesterday: a window past midnight that opened yesterday may still be open now.
    for offset in range(-1, 8):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() not in days:
            continue
        opens = datetime.combine(day, window.start, tzinfo=zone)
        closes = datetime.combine(day, window.end, tzinfo=zone)
        if closes <= opens:  # a window past midnight: it closes the next day
            closes += timedelta(days=1)
        if opens <= local < closes:
            return None
        if opens > local:
            return opens.astimezone(UTC)
    raise ValueError("a send window needs at least one day")
