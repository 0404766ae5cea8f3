"""The shipped reply model: multinomial logistic regression over hashed features, with a
Platt-scaled confidence. Inference is a sparse dot product in pure Python, so deploying it
needs neither numpy nor scikit-learn (those train it: `python -m shared.replies.train`).

File format (`reply_model.json.gz`): labels, intercepts, the non-zero feature buckets as
base64 int32 and their weights as base64 float32 (row-major, one column per label), the
Platt parameters, and one sub-label head per label that has sub-labels.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.replies.features import featurize, tokens, word_bucket

MODEL_PATH = Path(__file__).parent / "reply_model.json.gz"


def _decode_ints(data: str) -> tuple[int, ...]:
    raw = base64.b64decode(data)
    return struct.unpack(f"<{len(raw) // 4}i", raw)


def _decode_floats(data: str) -> tuple[float, ...]:
    raw = base64.b64decode(data)
    return struct.unpack(f"<{len(raw) // 4}f", raw)


def encode_ints(values: list[int]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}i", *values)).decode()


def encode_floats(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


@dataclass(frozen=True)
class LinearHead:
    labels: tuple[str, ...]
    intercept: tuple[float, ...]
    weights: dict[int, tuple[float, ...]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearHead:
        labels = tuple(data["labels"])
        buckets = _decode_ints(data["buckets"])
        flat = _decode_floats(data["weights"])
        k = len(labels)
        weights = {b: flat[i * k : (i + 1) * k] for i, b in enumerate(buckets)}
        return cls(labels, tuple(data["intercept"]), weights)

    def scores(self, features: dict[int, float]) -> list[float]:
        totals = list(self.intercept)
        for bucket, value in features.items():
            row = self.weights.get(bucket)
            if row is not None:
                for j, w in enumerate(row):
                    totals[j] += w * value
        return totals

    def probabilities(self, features: dict[int, float]) -> list[float]:
        return softmax(self.scores(features))


@dataclass(frozen=True)
class Prediction:
    label: str
    sub_label: str | None
    confidence: float
    raw_probability: float
    terms: list[str]


def platt(probability: float, a: float, b: float) -> float:
    p = min(max(probability, 1e-6), 1 - 1e-6)
    z = a * math.log(p / (1 - p)) + b
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class ReplyModel:
    version: str
    head: LinearHead
    platt_a: float
    platt_b: float
    sub_heads: dict[str, LinearHead]
    sole_sub_labels: dict[str, str]

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> ReplyModel:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        return cls(
            version=data["version"],
            head=LinearHead.from_json(data["head"]),
            platt_a=float(data["platt"][0]),
            platt_b=float(data["platt"][1]),
            sub_heads={k: LinearHead.from_json(v) for k, v in data["sub_heads"].items()},
            sole_sub_labels={str(k): str(v) for k, v in data.get("sole_sub_labels", {}).items()},
        )

    def predict(self, text: str) -> Prediction:
        features = featurize(text)
        probabilities = self.head.probabilities(features)
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        label = self.head.labels[best]
        sub_label = self.sole_sub_labels.get(label)
        sub_head = self.sub_heads.get(label)
        if sub_head is not None:
            sub_probabilities = sub_head.probabilities(features)
            sub_label = sub_head.labels[
                max(range(len(sub_probabilities)), key=sub_probabilities.__getitem__)
            ]
        return Prediction(
            label=label,
            sub_label=sub_label,
            confidence=round(platt(probabilities[best], self.platt_a, self.platt_b), 4),
            raw_probability=probabilities[best],
            terms=self._terms(text, best),
        )

    def _terms(self, text: str, column: int, limit: int = 5) -> list[str]:
        """The words that pushed hardest toward the chosen label (evidence for a reviewer)."""
        weighted: dict[str, float] = {}
        for word in tokens(text):
            row = self.head.weights.get(word_bucket(word))
            if row is not None:
                weighted[word] = row[column] - sum(row) / len(row)
        ranked = sorted(weighted.items(), key=lambda item: -item[1])
        return [word for word, weight in ranked[:limit] if weight > 0]
