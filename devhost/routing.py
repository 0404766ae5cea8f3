"""ASP.NET-style route templates, as the Functions host matches HTTP trigger routes.

Supported: literal segments (case-insensitive), `{name}`, `{name?}`, `{name=default}`,
constraints `{name:int}` (also long, bool, alpha, guid, double, float, decimal, datetime,
min(n), max(n), range(a,b), minlength(n), maxlength(n), length(n), regex(...)) and catch-alls
`{*rest}` / `{**rest}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

_PARAM = re.compile(r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][\w]*)(?P<rest>[^}]*)\}$")
_CONSTRAINT = re.compile(r":(\w+)(\((?:[^()]|\([^()]*\))*\))?")


class RouteTemplateError(ValueError):
    pass


def _check_constraint(kind: str, argument: str | None, value: str) -> bool:
    arg = argument[1:-1] if argument else ""
    match kind.lower():
        case "int" | "long":
            return re.fullmatch(r"-?\d+", value) is not None
        case "bool":
            return value.lower() in ("true", "false")
        case "alpha":
            return re.fullmatch(r"[A-Za-z]+", value) is not None
        case "guid":
            return (
                re.fullmatch(r"\{?[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?", value)
                is not None
            )
        case "double" | "float" | "decimal":
            try:
                float(value)
            except ValueError:
                return False
            return True
        case "datetime":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return False
            return True
        case "min":
            return re.fullmatch(r"-?\d+", value) is not None and int(value) >= int(arg)
        case "max":
            return re.fullmatch(r"-?\d+", value) is not None and int(value) <= int(arg)
        case "range":
            low, high = (int(x) for x in arg.split(","))
            return re.fullmatch(r"-?\d+", value) is not None and low <= int(value) <= high
        case "minlength":
            return len(value) >= int(arg)
        case "maxlength":
            return len(value) <= int(arg)
        case "length":
            if "," in arg:
                low, high = (int(x) for x in arg.split(","))
                return low <= len(value) <= high
            return len(value) == int(arg)
        case "regex":
            return re.fullmatch(arg, value) is not None
        case _:
            raise RouteTemplateError(f"unknown route constraint {kind!r}")


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    name: str | None = None
    constraints: tuple[tuple[str, str | None], ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    @property
    def rank(self) -> int:
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        if self.optional or self.default is not None:
            return 3
        return 1 if self.constraints else 2

    def accepts(self, value: str) -> bool:
        return all(_check_constraint(kind, arg, value) for kind, arg in self.constraints)


def _parse_segment(text: str) -> Segment:
    match = _PARAM.match(text)
    if match is None:
        if "{" in text or "}" in text:
            raise RouteTemplateError(f"complex route segment {text!r} is not supported")
        return Segment(literal=text)
    rest = match.group("rest")
    default = None
    optional = False
    if "=" in rest:
        rest, default = rest.split("=", 1)
    if rest.endswith("?"):
        optional = True
        rest = rest[:-1]
    constraints = tuple((m.group(1), m.group(2)) for m in _CONSTRAINT.finditer(rest))
    for kind, arg in constraints:
        _check_constraint(kind, arg, "0") if kind.lower() != "regex" else re.compile(arg or "")
    return Segment(
        name=match.group("name"),
        constraints=constraints,
        optional=optional,
        default=default,
        catch_all=bool(match.group("star")),
    )


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[Segment, ...]

    @classmethod
    def compile(cls, route: str, prefix: str) -> RouteTemplate:
        parts = [p for p in prefix.strip("/").split("/") if p] + [
            p for p in route.strip("/").split("/") if p
        ]
        segments = tuple(_parse_segment(p) for p in parts)
        for segment in segments[:-1]:
            if segment.catch_all:
                raise RouteTemplateError(f"catch-all must be the last segment in {route!r}")
        return cls(template="/" + "/".join(parts), segments=segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return (*(s.rank for s in self.segments), 9)

    def match(self, path: str) -> dict[str, str] | None:
        parts = [p for p in path.strip("/").split("/") if p != ""]
        values: dict[str, str] = {}
        for position, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = "/".join(unquote(p) for p in parts[position:])
                if rest:
                    values[segment.name or ""] = rest
                elif segment.default is not None:
                    values[segment.name or ""] = segment.default
                return values
            if position >= len(parts):
                if segment.literal is None and (segment.optional or segment.default is not None):
                    if segment.default is not None:
                        values[segment.name or ""] = segment.default
                    continue
                return None
            value = unquote(parts[position])
            if segment.literal is not None:
                if value.casefold() != segment.literal.casefold():
                    return None
                continue
            if not segment.accepts(value):
                return None
            values[segment.name or ""] = value
        if len(parts) > len(self.segments):
            return None
        return values
