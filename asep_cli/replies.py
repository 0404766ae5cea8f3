"""`asep classify FILE.eml [FILE.eml ...]`: one JSON object per file, one per line, in order."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shared.replies.classifier import classify_raw, offline_model


def _classify(args: argparse.Namespace) -> int:
    model = offline_model()  # loaded once for all files
    failures = 0
    for name in args.files:
        line: dict[str, Any] = {"file": name}
        error: str | None = None
        try:
            with open(name, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc.strerror or exc}"
        else:
            try:
                result = classify_raw(raw, model)
            except Exception as exc:  # a classifier bug on one file must not lose the others
                error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            failures += 1
            line.update(label=None, sub_label=None, confidence=None, evidence=None, error=error)
        else:
            line.update(
                label=result.label.value,
                sub_label=result.sub_label,
                confidence=result.confidence,
                evidence=result.evidence.model_dump(mode="json"),
            )
            if result.reason:
                line["reason"] = result.reason
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 1 if failures else 0


def add_replies_commands(commands: Any) -> None:
    classify = commands.add_parser(
        "classify", help="classify .eml files offline: one JSON line per file"
    )
    classify.add_argument("files", nargs="+", metavar="FILE.eml")
    classify.set_defaults(handler=_classify)
