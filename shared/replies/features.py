"""Text features for the reply model: hashed word uni/bigrams and character n-grams.

Hashing (CRC-32, stable across processes, unlike `hash()`) keeps the shipped model a fixed
size whatever vocabulary arrives; character n-grams carry inflections and the languages
the labelled set has few examples of. Training and inference share this one function.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib

DIMENSIONS = 1 << 18
CHAR_NGRAMS = (3, 4, 5)
CHAR_WEIGHT = 0.35
MAX_CHARS = 2_000
_URL = re.compile(r"https?://\S+|www\.\S+")
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[?!]", re.UNICODE)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()
    text = _URL.sub(" urltoken ", text)
    text = _EMAIL.sub(" emailtoken ", text)
    return text.replace("\u2019", "'")


def tokens(text: str) -> list[str]:
    return [("0" if t.isdigit() else t) for t in _TOKEN.findall(normalize(text))]


def _bucket(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) % DIMENSIONS


def _length_feature(count: int) -> str:
    for limit, name in ((1, "1"), (3, "2-3"), (10, "4-10"), (30, "11-30")):
        if count <= limit:
            return f"len:{name}"
    return "len:31+"


def featurize(text: str) -> dict[int, float]:
    """Sparse L2-normalised feature vector: bucket -> weight."""
    words = tokens(text)
    counts: dict[int, float] = {}

    def add(feature: str, weight: float) -> None:
        bucket = _bucket(feature)
        counts[bucket] = counts.get(bucket, 0.0) + weight

    for word in words:
        add("w:" + word, 1.0)
        padded = f" {word} "
        if len(word) > 2:
            for n in CHAR_NGRAMS:
                for i in range(len(padded) - n + 1):
                    add("c:" + padded[i : i + n], CHAR_WEIGHT)
    for first, second in itertools.pairwise(words):
        add(f"b:{first} {second}", 1.0)
    add(_length_feature(len(words)), 1.0)
    # Sublinear term frequency: one word repeated ten times is not ten times the evidence.
    vector = {k: 1.0 + math.log(v) if v >= 1 else v for k, v in counts.items()}
    norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
    return {k: v / norm for k, v in vector.items()}


def word_bucket(word: str) -> int:
    return _bucket("w:" + word)
