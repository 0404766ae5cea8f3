"""Measuring the classifier: on the sisimai corpus (bounces, complaints, auto-replies with
their published labels) and on our labelled sales-reply evaluation set. Used by
bench/classify_corpus.py and by the tests that hold the goals."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.replies.classifier import HumanReplyModel, classify_raw, offline_model
from shared.replies.dataset import EVAL_PATH, load, to_mime
from shared.replies.model import expected_calibration_error
from shared.replies.schemas import ReplyLabel

# The sisimai README maps its reasons onto our classes; "other" is anything that is neither a
# bounce, a complaint nor an out-of-office (a success DSN, the not/ messages).
OTHER = "other"


def sisimai_expectation(labels: list[dict[str, Any]]) -> tuple[str, str | None]:
    first = labels[0]
    reason = first["reason"]
    if reason == "vacation":
        return ReplyLabel.OOO.value, None
    if reason == "feedback":
        return ReplyLabel.COMPLAINT.value, first.get("another") or None
    if reason == "delivered":
        return OTHER, None
    return ReplyLabel.BOUNCE.value, "hard" if first["hard_bounce"] else "soft"


def _prf(pairs: Sequence[tuple[str, str]], label: str) -> dict[str, float | int]:
    tp = sum(1 for e, g in pairs if e == label and g == label)
    fp = sum(1 for e, g in pairs if e != label and g == label)
    fn = sum(1 for e, g in pairs if e == label and g != label)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "support": tp + fn,
    }


def evaluate_sisimai(root: Path, model: HumanReplyModel | None = None) -> dict[str, Any]:
    model = model or offline_model()
    labels: dict[str, list[dict[str, Any]]] = json.loads((root / "labels.json").read_text())
    cases: list[tuple[Path, tuple[str, str | None]]] = [
        (root / "bsd" / name, sisimai_expectation(entries))
        for name, entries in sorted(labels.items())
        if (root / "bsd" / name).exists()
    ]
    cases += [(path, (OTHER, None)) for path in sorted((root / "not").glob("*.eml"))]
    pairs: list[tuple[str, str]] = []
    hard_soft: list[tuple[str, str | None]] = []
    complaint_types: list[tuple[str | None, str | None]] = []
    positive_bounces = 0
    started = time.perf_counter()
    for path, (expected, expected_sub) in cases:
        result = classify_raw(path.read_bytes(), model)
        got = result.label.value
        if got not in {ReplyLabel.BOUNCE.value, ReplyLabel.COMPLAINT.value, ReplyLabel.OOO.value}:
            got_class = OTHER
        else:
            got_class = got
        pairs.append((expected, got_class))
        if expected == ReplyLabel.BOUNCE.value:
            positive_bounces += got == ReplyLabel.POSITIVE.value
            if got == ReplyLabel.BOUNCE.value:
                hard_soft.append((expected_sub or "", result.sub_label))
        if expected == ReplyLabel.COMPLAINT.value and got == ReplyLabel.COMPLAINT.value:
            complaint_types.append((expected_sub, result.sub_label))
    elapsed = time.perf_counter() - started
    agreement = sum(e == g for e, g in hard_soft) / len(hard_soft) if hard_soft else 0.0
    bounce = _prf(pairs, ReplyLabel.BOUNCE.value)
    bounce["hard_soft_agreement"] = round(agreement, 4)
    bounce["hard_soft_compared"] = len(hard_soft)
    for sub in ("hard", "soft"):
        sub_pairs = [(e, g or "") for e, g in hard_soft]
        bounce[sub] = _prf(sub_pairs, sub)  # type: ignore[assignment]
    complaint = _prf(pairs, ReplyLabel.COMPLAINT.value)
    complaint["feedback_type_agreement"] = (
        round(sum(e == g for e, g in complaint_types) / len(complaint_types), 4)
        if complaint_types
        else 0.0
    )
    return {
        "messages": len(cases),
        "bounce": bounce,
        "complaint": complaint,
        "ooo": _prf(pairs, ReplyLabel.OOO.value),
        "bounces_classified_positive": positive_bounces,
        "confusion": {f"{e}->{g}": n for (e, g), n in sorted(Counter(pairs).items())},
        "ms_per_message": round(1000 * elapsed / max(len(cases), 1), 2),
    }


def evaluate_sales_replies(
    path: Path = EVAL_PATH, model: HumanReplyModel | None = None
) -> dict[str, Any]:
    model = model or offline_model()
    records = load(path)
    expected: list[str] = []
    predicted: list[str] = []
    confidences: list[float] = []
    model_only: list[tuple[float, bool]] = []
    sub_agree = sub_total = 0
    for index, record in enumerate(records):
        result = classify_raw(to_mime(record, index), model)
        expected.append(record.label)
        predicted.append(result.label.value)
        confidences.append(result.confidence)
        if result.evidence.source.startswith("model:"):
            model_only.append((result.confidence, record.label == result.label.value))
        if record.sub_label and record.label == result.label.value:
            sub_total += 1
            sub_agree += record.sub_label == result.sub_label
    labels = [label.value for label in ReplyLabel if label.value in set(expected) | set(predicted)]
    pairs = list(zip(expected, predicted, strict=True))
    per_class = {label: _prf(pairs, label) for label in labels}
    present = [label for label in labels if per_class[label]["support"]]
    correct = [e == p for e, p in pairs]
    return {
        "examples": len(records),
        "accuracy": round(sum(correct) / len(correct), 4),
        "macro_f1": round(sum(float(per_class[lb]["f1"]) for lb in present) / len(present), 4),
        "per_class": per_class,
        "confusion_matrix": {
            "labels": labels,
            "rows_expected_columns_predicted": [
                [sum(1 for e, p in pairs if e == row and p == col) for col in labels]
                for row in labels
            ],
        },
        "ece": round(expected_calibration_error(confidences, correct), 4),
        "ece_model_decided": round(
            expected_calibration_error([c for c, _ in model_only], [k for _, k in model_only]), 4
        ),
        "model_decided": len(model_only),
        "mean_confidence": round(sum(confidences) / len(confidences), 4),
        "sub_label_agreement": round(sub_agree / sub_total, 4) if sub_total else 0.0,
    }
