"""`asep classify`: one JSON line per file, in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asep_cli import replies
from asep_cli.main import main
from shared.replies import classifier
from shared.replies.classifier import HumanReplyModel
from shared.replies.schemas import ReplyClassification
from tests.unit.replies.messages import arf, dsn, human


def test_classify_prints_one_json_object_per_file_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "a.eml": human("Yes please, send me a calendar invite for Tuesday."),
        "b.eml": dsn("5.1.1", "550 5.1.1 User unknown"),
        "c.eml": arf(),
        "d.eml": b"\x00garbage",
    }
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
    paths = [str(tmp_path / name) for name in files]
    assert main(["classify", *paths]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == paths
    assert all(
        {"file", "label", "sub_label", "confidence", "evidence"} <= line.keys() for line in lines
    )
    assert [line["label"] for line in lines[:3]] == ["positive", "bounce", "complaint"]
    assert lines[1]["sub_label"] == "hard"


def test_a_missing_file_is_reported_in_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["classify", str(tmp_path / "missing.eml")]) == 1
    line = json.loads(capsys.readouterr().out)
    assert line["label"] is None
    assert "FileNotFoundError" in line["error"]


def test_a_classifier_failure_on_one_file_is_reported_and_the_rest_classified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = classifier.classify_raw

    def failing_on_poison(raw: bytes, model: HumanReplyModel | None = None) -> ReplyClassification:
        if b"poison" in raw:
            raise RuntimeError("a bug")
        return real(raw, model)

    monkeypatch.setattr(replies, "classify_raw", failing_on_poison)
    paths = []
    for name, raw in {"a.eml": human("poison"), "b.eml": human("Yes, let's talk.")}.items():
        (tmp_path / name).write_bytes(raw)
        paths.append(str(tmp_path / name))
    assert main(["classify", *paths]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (first["label"], first["error"]) == (None, "RuntimeError: a bug")
    assert second["label"] == "positive"
