"""CEL for policy rules: compiling `when` expressions and checking what they read.

The `common-expression-language` package (Rust `cel` crate) compiles and evaluates. Its
`Program.references()` names only top-level variables (`recipient`, not `recipient.domain`)
and only syntax errors carry a position, so field paths are checked twice: statically, by
scanning the expression for dotted paths rooted at an input section and walking them down
the `PolicyInput` model (this sees paths behind `&&`/`||` that evaluation would
short-circuit past), and dynamically, by evaluating the rule against fully populated sample
inputs in which every list is non-empty (this catches type errors and paths reached through
macros or indexing).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, Union, get_args, get_origin

import cel
from pydantic import BaseModel

from shared.policy.schemas import PolicyInput

_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?")
_STRING_PREFIX = re.compile(r"(?:[rR][bB]?|[bB][rR]?)$")
_MACROS_BINDING = ("all", "exists", "exists_one", "map", "filter")
# Identifiers that may stand alone in an expression without being an input section.
_BUILTIN_NAMES = frozenset(
    {"true", "false", "null", "in", "int", "uint", "double", "bool", "string", "bytes"}
    | {"list", "map", "type", "null_type", "dyn"}
)


class CelSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def compile_expression(source: str) -> cel.Program:
    """Compile one expression; a syntax error carries its 1-based line and column."""
    try:
        return cel.compile(source)
    except ValueError as exc:
        found = _POSITION.search(str(exc))
        if found is None:
            raise CelSyntaxError(str(exc), None, None) from exc
        line, column, message = int(found.group(1)), int(found.group(2)), found.group(3)
        raise CelSyntaxError(message.strip(), line, column) from exc


@dataclass(frozen=True)
class PathReference:
    path: tuple[str, ...]
    offset: int


@dataclass(frozen=True)
class UnknownPath:
    path: str
    message: str
    line: int
    column: int


def _skip_string(source: str, start: int) -> int:
    """Index just past the string literal whose opening quote is at `start`."""
    quote = source[start]
    triple = source.startswith(quote * 3, start)
    delimiter = quote * 3 if triple else quote
    raw = bool(_STRING_PREFIX.search(source[max(0, start - 2) : start]))
    index = start + len(delimiter)
    while index < len(source):
        if source[index] == "\\" and not raw:
            index += 2
            continue
        if source.startswith(delimiter, index):
            return index + len(delimiter)
        index += 1
    return index


def _next_significant(source: str, index: int) -> int:
    while index < len(source) and source[index].isspace():
        index += 1
    return index


def scan_paths(source: str) -> tuple[list[PathReference], set[str]]:
    """Dotted paths outside string literals, and the names comprehension macros bind."""
    paths: list[PathReference] = []
    bound: set[str] = set()
    index = 0
    previous_significant = ""
    while index < len(source):
        char = source[index]
        if char.isspace():
            index += 1
            continue
        if char in "'\"":
            index = _skip_string(source, index)
            previous_significant = '"'
            continue
        number = _NUMBER.match(source, index) if char.isdigit() else None
        if number:
            index = number.end()
            previous_significant = "0"
            continue
        ident = _IDENT.match(source, index)
        if ident is None:
            previous_significant = char
            index += 1
            continue
        after = _next_significant(source, ident.end())
        if after < len(source) and source[after] in "'\"" and _STRING_PREFIX.fullmatch(ident[0]):
            index = after  # r"..." / b'...': the identifier was a string prefix
            continue
        start = ident.start()
        segments = [ident[0]]
        index = ident.end()
        while True:
            dot = _next_significant(source, index)
            if dot >= len(source) or source[dot] != ".":
                break
            following = _IDENT.match(source, _next_significant(source, dot + 1))
            if following is None:
                break
            segments.append(following[0])
            index = following.end()
        call = _next_significant(source, index)
        is_call = call < len(source) and source[call] == "("
        if is_call and segments[-1] in _MACROS_BINDING:
            variable = _IDENT.match(source, _next_significant(source, call + 1))
            if variable is not None:
                bound.add(variable[0])
        if is_call:
            segments.pop()  # a function or method name, not a field
        if segments and previous_significant != ".":
            paths.append(PathReference(tuple(segments), start))
        previous_significant = "a"
    return paths, bound


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _describe(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is list:
        return "list"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "string"
        return {str: "string", int: "int", float: "double", bool: "bool"}.get(
            annotation, annotation.__name__
        )
    return str(annotation)


def _position(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def unknown_paths(source: str, model: type[BaseModel] = PolicyInput) -> list[UnknownPath]:
    """Every dotted path in `source` that does not exist in `model` (or is not a name)."""
    references, bound = scan_paths(source)
    hints = typing.get_type_hints(model)
    problems: list[UnknownPath] = []
    for reference in references:
        head = reference.path[0]
        if head in bound or head in _BUILTIN_NAMES:
            continue
        line, column = _position(source, reference.offset)
        if head not in model.model_fields:
            problems.append(UnknownPath(head, f"unknown input section '{head}'", line, column))
            continue
        current: Any = hints[head]
        walked = [head]
        for segment in reference.path[1:]:
            section = _model_of(current)
            if section is None:
                problems.append(
                    UnknownPath(
                        ".".join([*walked, segment]),
                        f"'{'.'.join(walked)}' is a {_describe(current)} and has no field "
                        f"'{segment}'",
                        line,
                        column,
                    )
                )
                break
            if segment not in section.model_fields:
                problems.append(
                    UnknownPath(
                        ".".join([*walked, segment]),
                        f"unknown field '{'.'.join([*walked, segment])}'",
                        line,
                        column,
                    )
                )
                break
            current = typing.get_type_hints(section)[segment]
            walked.append(segment)
    return problems


def _sample_value(annotation: Any, flag: bool) -> Any:
    section = _model_of(annotation)
    if section is not None:
        return _sample_model(section, flag)
    origin = get_origin(annotation)
    if origin is list:
        (item,) = get_args(annotation)
        return [_sample_value(item, flag)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return list(annotation)[-1 if flag else 0]
    if annotation is bool:
        return flag
    if annotation is int:
        return 3 if flag else 0
    if annotation is float:
        return 0.75 if flag else 0.0
    if annotation is str:
        return "sample.example" if flag else "x"
    raise TypeError(f"no sample value for {annotation!r}")


def _sample_model(model: type[BaseModel], flag: bool) -> BaseModel:
    hints = typing.get_type_hints(model)
    return model(**{name: _sample_value(hints[name], flag) for name in model.model_fields})


def sample_activations() -> list[dict[str, Any]]:
    """Two fully populated inputs (every list non-empty), booleans all true and all false,
    so a rule is exercised down both sides of its `&&`/`||`."""
    return [_sample_model(PolicyInput, flag).model_dump(mode="json") for flag in (True, False)]


def describe_runtime_error(exc: BaseException) -> str:
    """A short, stable message for a CEL evaluation failure."""
    if isinstance(exc, KeyError):
        return f"no such field {exc.args[0]!r}" if exc.args else "no such field"
    text = str(exc).split(". ", 1)[0].strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
