"""Reading pack documents (YAML or JSON), the shipped default pack, and the compiled-pack cache."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.policy.model import CompiledPack, PackInvalid, compile_pack, issues_from_validation
from shared.policy.schemas import PackIssue, PolicyPackDocument

DEFAULT_PACK_PATH = Path(__file__).resolve().parent / "default_pack.yaml"
# The shipped default's version: raise it whenever default_pack.yaml changes, so decisions
# name the rules they were made under and cached compilations are not reused.
DEFAULT_PACK_VERSION = 1
MAX_PACK_TEXT_BYTES = 262_144


def source_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _yaml_issue(exc: yaml.YAMLError) -> PackIssue:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return PackIssue(
        field="document",
        message=f"not valid YAML or JSON: {problem}",
        line=mark.line + 1 if mark is not None else None,
        column=mark.column + 1 if mark is not None else None,
    )


def parse_pack_text(text: str) -> PolicyPackDocument:
    """A pack document from YAML (JSON is YAML too); `PackInvalid` names what is wrong."""
    if len(text.encode("utf-8")) > MAX_PACK_TEXT_BYTES:
        raise PackInvalid(
            [PackIssue(field="document", message=f"larger than {MAX_PACK_TEXT_BYTES} bytes")]
        )
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PackInvalid([_yaml_issue(exc)]) from exc
    except RecursionError as exc:
        # PyYAML composes nested collections recursively; a few hundred levels exhaust it.
        raise PackInvalid(
            [PackIssue(field="document", message="not valid YAML or JSON: nested too deeply")]
        ) from exc
    return parse_pack_object(raw)


def parse_pack_object(raw: Any) -> PolicyPackDocument:
    if not isinstance(raw, dict):
        raise PackInvalid(
            [PackIssue(field="document", message="a pack is a mapping with id and rules")]
        )
    try:
        return PolicyPackDocument.model_validate(raw)
    except ValidationError as exc:
        raise PackInvalid(issues_from_validation(exc, raw)) from exc


@lru_cache(maxsize=1)
def default_pack_text() -> str:
    return DEFAULT_PACK_PATH.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def default_pack() -> CompiledPack:
    """The shipped default pack, for tenants that have not activated one of their own."""
    return compile_pack(parse_pack_text(default_pack_text()), DEFAULT_PACK_VERSION)


CacheKey = tuple[uuid.UUID | None, str, int]


class CompiledPackCache:
    """Compiled packs by (tenant, pack id, version). A saved version never changes, so an
    entry never goes stale; the bound only limits memory across many tenants."""

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: OrderedDict[CacheKey, CompiledPack] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get_or_compile(self, key: CacheKey, build: Callable[[], CompiledPack]) -> CompiledPack:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        # Compiling outside the lock: two threads may both compile a new version once.
        compiled = build()
        with self._lock:
            self._entries[key] = compiled
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


compiled_packs = CompiledPackCache()
