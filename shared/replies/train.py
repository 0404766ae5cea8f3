"""Train the shipped reply model: `python -m shared.replies.train`.

Reads only data/train.txt (the evaluation set is never read here), builds each record's MIME
message and reduces it exactly as production does, fits a multinomial logistic regression on
hashed features, fits Platt scaling of the top-class probability on out-of-fold predictions
(5 stratified folds), then refits on everything and writes reply_model.json.gz. Same data,
same file: the folds are seeded and the gzip header carries no timestamp.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from shared.replies.dataset import TRAIN_PATH, load, to_mime
from shared.replies.features import DIMENSIONS, featurize
from shared.replies.linear import MODEL_PATH, encode_floats, encode_ints
from shared.replies.model import expected_calibration_error
from shared.replies.reduce import message_text, new_text

# Chosen by out-of-fold accuracy on the training set among 1, 3, 10, 30.
REGULARIZATION_C = 10.0
FOLDS = 5
SEED = 20260301


def reduced_texts(path: Path) -> tuple[list[str], list[str], list[str | None]]:
    records = load(path)
    texts = [new_text(message_text(to_mime(r, i)).body) for i, r in enumerate(records)]
    return texts, [r.label for r in records], [r.sub_label for r in records]


def matrix(texts: list[str]) -> tuple[csr_matrix, np.ndarray]:
    """The feature matrix over the buckets that occur (a few thousand of 2^18, which keeps
    fitting fast), and those buckets in column order."""
    vectors = [featurize(text) for text in texts]
    buckets = np.array(sorted({b for v in vectors for b in v}), dtype=np.int64)
    column = {int(b): i for i, b in enumerate(buckets)}
    rows, cols, values = [], [], []
    for i, vector in enumerate(vectors):
        for bucket, value in sorted(vector.items()):
            rows.append(i)
            cols.append(column[bucket])
            values.append(value)
    shape = (len(texts), len(buckets))
    return csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float64), buckets


def _fit(x: csr_matrix, y: list[str]) -> LogisticRegression:
    model = LogisticRegression(C=REGULARIZATION_C, max_iter=5000, tol=1e-6)
    return model.fit(x, y)


def _head(model: LogisticRegression, buckets: np.ndarray) -> dict[str, Any]:
    labels = [str(c) for c in model.classes_]
    coef = np.asarray(model.coef_)
    intercept = np.asarray(model.intercept_)
    if len(labels) == 2:
        # scikit-learn keeps one row for two classes; softmax over (-z/2, z/2) is sigmoid(z).
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    used = np.flatnonzero(np.abs(coef).max(axis=0) > 1e-6)
    return {
        "labels": labels,
        "intercept": [round(float(v), 6) for v in intercept],
        "buckets": encode_ints([int(b) for b in buckets[used]]),
        "weights": encode_floats([float(v) for v in coef[:, used].T.reshape(-1)]),
    }


def _logit(p: np.ndarray) -> np.ndarray:
    clipped: np.ndarray = np.clip(p, 1e-6, 1 - 1e-6)
    logits: np.ndarray = np.log(clipped / (1 - clipped))
    return logits


def train(path: Path = TRAIN_PATH) -> tuple[dict[str, Any], dict[str, float]]:
    texts, labels, sub_labels = reduced_texts(path)
    x, buckets = matrix(texts)
    y = np.array(labels)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    top = np.zeros(len(texts))
    correct = np.zeros(len(texts), dtype=bool)
    for train_index, test_index in folds.split(np.zeros(len(y)), y):
        fold_model = _fit(x[train_index], list(y[train_index]))
        probabilities = fold_model.predict_proba(x[test_index])
        top[test_index] = probabilities.max(axis=1)
        correct[test_index] = fold_model.classes_[probabilities.argmax(axis=1)] == y[test_index]
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(top).reshape(-1, 1), correct)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    calibrated = 1 / (1 + np.exp(-(a * _logit(top) + b)))
    final = _fit(x, labels)
    sub_heads: dict[str, Any] = {}
    # A label all of whose examples carry one sub-label (complaint/abuse) needs no head, but
    # its predictions must still carry that sub-label.
    sole_sub_labels: dict[str, str] = {}
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, (label, sub) in enumerate(zip(labels, sub_labels, strict=True)):
        if sub:
            by_label[label].append(i)
    for label, members in sorted(by_label.items()):
        subs = [sub_labels[i] or "" for i in members]
        if len(set(subs)) >= 2:
            sub_heads[label] = _head(_fit(x[members], subs), buckets)
        elif len(members) == labels.count(label):
            sole_sub_labels[label] = subs[0]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    artifact = {
        "version": f"linear-{digest}",
        "features": {"dimensions": DIMENSIONS, "scheme": "crc32 words+bigrams+char3-5"},
        "head": _head(final, buckets),
        "platt": [round(a, 6), round(b, 6)],
        "sub_heads": sub_heads,
        "sole_sub_labels": sole_sub_labels,
        "training": {"examples": len(texts), "folds": FOLDS, "C": REGULARIZATION_C},
    }
    report = {
        "examples": float(len(texts)),
        "oof_accuracy": float(correct.mean()),
        "oof_ece_raw": expected_calibration_error(list(top), list(correct)),
        "oof_ece_platt": expected_calibration_error(list(calibrated), list(correct)),
        "platt_a": a,
        "platt_b": b,
    }
    return artifact, report


def write(artifact: dict[str, Any], path: Path = MODEL_PATH) -> None:
    payload = json.dumps(artifact, sort_keys=True, separators=(",", ":")).encode()
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    artifact, report = train()
    write(artifact, args.out)
    report["bytes"] = float(args.out.stat().st_size)
    print(json.dumps({k: (round(v, 4) if not math.isnan(v) else None) for k, v in report.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
