"""Classifying one message: deterministic detectors first, then a model for human replies.

`classify_raw` never raises on what arrives: an unreadable message is classified from what
could be read, or marked unclassifiable with the reason.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol

from shared.mail.mime import header_text, storable
from shared.replies import detectors
from shared.replies.detectors import Detection
from shared.replies.linear import ReplyModel
from shared.replies.model import next_step
from shared.replies.reduce import message_text, new_text, unreadable_share
from shared.replies.schemas import (
    Evidence,
    ReplyClassification,
    ReplyLabel,
    ReplyModelOutput,
    ReplyStatus,
)

EXCERPT_CHARS = 300
AUTOMATED_CONFIDENCE = 0.5
# Past this share of undecodable or control characters the text is not something a person
# wrote in a charset we could read; a model's label for it would be noise.
UNREADABLE_SHARE = 0.2


@dataclass(frozen=True)
class HumanVerdict:
    label: ReplyLabel
    sub_label: str | None
    confidence: float
    source: str
    signals: list[str] = field(default_factory=list)


class HumanReplyModel(Protocol):
    """Labels the new text of a human reply: the offline linear model, or a hosted LLM
    through the router (`RouterReplyModel` in shared/replies/service.py)."""

    version: str

    def judge(self, text: str, subject: str) -> HumanVerdict: ...


class OfflineReplyModel:
    def __init__(self, model: ReplyModel) -> None:
        self._model = model
        self.version = model.version

    def judge(self, text: str, subject: str) -> HumanVerdict:
        prediction = self._model.predict(text)
        return HumanVerdict(
            label=ReplyLabel(prediction.label),
            sub_label=prediction.sub_label,
            confidence=prediction.confidence,
            source="linear",
            signals=[f"terms:{','.join(prediction.terms)}"] if prediction.terms else [],
        )

    def output(self, text: str, subject: str) -> ReplyModelOutput:
        """The Task.CLASSIFY_REPLY answer the offline LLM provider gives."""
        verdict = self.judge(text, subject)
        return ReplyModelOutput(
            label=verdict.label,
            sub_label=verdict.sub_label,
            confidence=verdict.confidence,
            rationale="; ".join(verdict.signals),
        )


@functools.cache
def offline_model() -> OfflineReplyModel:
    """The shipped model, loaded once per process."""
    return OfflineReplyModel(ReplyModel.load())


def _storable(value: Any) -> Any:
    """Evidence PostgreSQL can store: no NUL, no lone surrogates, at any depth."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items()}
    return value


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:EXCERPT_CHARS]


def _subject(message: Message | None) -> str:
    if message is None:
        return ""
    try:
        return header_text(message.get("Subject") or "")[:300]
    except Exception:
        return ""


def _result(
    label: ReplyLabel,
    sub_label: str | None,
    confidence: float,
    evidence: Evidence,
    reduced: str,
    version: str,
    *,
    status: ReplyStatus = ReplyStatus.CLASSIFIED,
    reason: str | None = None,
) -> ReplyClassification:
    confidence = round(min(max(confidence, 0.0), 1.0), 4)
    evidence = Evidence.model_validate(_storable(evidence.model_dump()))
    reduced = storable(reduced)
    recommendation = (
        f"Unclassifiable ({reason}): a person should read this message."
        if status is ReplyStatus.UNCLASSIFIABLE
        else next_step(label, sub_label, confidence)
    )
    return ReplyClassification(
        label=label,
        sub_label=sub_label,
        confidence=confidence,
        evidence=evidence,
        status=status,
        reason=reason,
        classifier_version=version,
        reduced_text=reduced,
        recommendation=recommendation,
    )


def _from_detection(
    found: Detection, reduced: str, version: str, problems: list[str]
) -> ReplyClassification:
    return _result(
        found.label,
        found.sub_label,
        found.confidence,
        Evidence(
            excerpt=_excerpt(reduced),
            signals=[*found.signals, *problems[:3]][:20],
            source=f"detector:{found.detector}",
            addresses=found.addresses[:20],
            status_codes=found.status_codes[:10],
        ),
        reduced,
        version,
    )


def classify_raw(raw: bytes, model: HumanReplyModel | None = None) -> ReplyClassification:
    model = model or offline_model()
    version = f"detectors-1+{model.version}"
    read = message_text(raw)
    message = read.message
    problems = [f"problem:{p}" for p in read.problems]
    if read.html_only:
        problems.append("html-only")
    reduced = new_text(read.body)
    subject = _subject(message)
    if message is not None:
        machine = detectors.detect_machine(message, reduced)
        if machine is not None:
            return _from_detection(machine, reduced, version, problems)
    for found in (
        detectors.detect_unsubscribe(reduced, subject),
        detectors.detect_ooo_text(reduced, subject),
    ):
        if found is not None:
            return _from_detection(found, reduced, version, problems)
    if not reduced.strip():
        return _result(
            ReplyLabel.NEUTRAL,
            None,
            0.0,
            Evidence(signals=problems, source="none"),
            reduced,
            version,
            status=ReplyStatus.UNCLASSIFIABLE,
            reason="no new text: empty body, only quoted history, or unreadable content",
        )
    if unreadable_share(reduced) > UNREADABLE_SHARE:
        return _result(
            ReplyLabel.NEUTRAL,
            None,
            0.0,
            Evidence(excerpt=_excerpt(reduced), signals=problems, source="none"),
            reduced,
            version,
            status=ReplyStatus.UNCLASSIFIABLE,
            reason="unreadable text: binary content or an undecodable charset",
        )
    if message is not None and detectors.looks_automated(message):
        # A delivery-system message no detector understood is never a prospect's interest.
        return _result(
            ReplyLabel.NEUTRAL,
            "automated",
            AUTOMATED_CONFIDENCE,
            Evidence(
                excerpt=_excerpt(reduced),
                signals=["automated-sender", *problems],
                source="detector:automated",
            ),
            reduced,
            version,
        )
    verdict = model.judge(reduced, subject)
    label = verdict.label
    if label is ReplyLabel.BOUNCE:
        # Bounces are structural; a model that says "bounce" about prose is guessing.
        label = ReplyLabel.NEUTRAL
    return _result(
        label,
        verdict.sub_label,
        verdict.confidence,
        Evidence(
            excerpt=_excerpt(reduced),
            signals=[*verdict.signals, *problems][:20],
            source=f"model:{verdict.source}",
        ),
        reduced,
        version,
    )
