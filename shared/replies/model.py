"""Reply rules with no I/O: what each label means for the sequence, suppression, health and
the rep, and calibration arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.replies.schemas import ReplyLabel

# A confidence under this on a human reply asks a person to read it before anyone acts on
# the label; the deal thresholds (0.65 / 0.85) live in the policy pack.
REVIEW_BELOW = 0.6

_OBJECTION_STEPS = {
    "timing": "Timing objection: stop the sequence and schedule a re-engagement touch for the "
    "period they named.",
    "budget": "Budget objection: stop the sequence; offer a smaller starting package or revisit "
    "at their next budget cycle.",
    "competitor": "They use another solution: stop the sequence; log the competitor in the CRM "
    "and revisit near their renewal.",
    "no_need": "No need today: stop the sequence and mark the account as not a current fit.",
    "authority": "Not the decision maker: stop the sequence; ask who owns the decision or "
    "research the buying committee.",
    "not_interested": "Not interested: stop the sequence; do not follow up on this campaign.",
}


@dataclass(frozen=True)
class ReplyEffects:
    """What the platform does on this label (the sequence stops on every reply)."""

    suppress: bool
    intent_event: bool
    counts_as_bounce: bool
    counts_as_complaint: bool


def effects(label: ReplyLabel, sub_label: str | None) -> ReplyEffects:
    return ReplyEffects(
        suppress=label in {ReplyLabel.UNSUBSCRIBE, ReplyLabel.COMPLAINT}
        or (label is ReplyLabel.BOUNCE and sub_label == "hard"),
        intent_event=label is ReplyLabel.POSITIVE,
        counts_as_bounce=label is ReplyLabel.BOUNCE,
        counts_as_complaint=label is ReplyLabel.COMPLAINT,
    )


def next_step(label: ReplyLabel, sub_label: str | None, confidence: float) -> str:
    """The recommendation a rep reads next to the reply."""
    match label:
        case ReplyLabel.POSITIVE if sub_label == "meeting_request":
            step = "Positive reply asking to meet: offer three slots (or confirm the time they "
            step += "proposed) and book the meeting today."
        case ReplyLabel.POSITIVE:
            step = "Positive reply: answer their questions within a business day and propose a "
            step += "meeting; deal gating decides on the CRM deal."
        case ReplyLabel.NEUTRAL if sub_label == "referral":
            step = "Referral: thank them, then contact the person they named, citing this reply."
        case ReplyLabel.NEUTRAL if sub_label == "question":
            step = "Question: a rep answers it personally; the sequence stays stopped."
        case ReplyLabel.NEUTRAL if sub_label == "delivery_report":
            step = "Delivery confirmation only: no action."
        case ReplyLabel.NEUTRAL:
            step = "Neutral reply: a rep reads it and decides whether to follow up by hand."
        case ReplyLabel.OBJECTION:
            step = _OBJECTION_STEPS.get(
                sub_label or "", "Objection: stop the sequence; a rep decides whether to respond."
            )
        case ReplyLabel.UNSUBSCRIBE:
            step = "Unsubscribed: the address is suppressed; never contact it again."
        case ReplyLabel.OOO if sub_label == "auto_reply":
            step = "Automatic reply: no action; the sequence stops and a rep may resume it later."
        case ReplyLabel.OOO:
            step = "Out of office: the sequence stops; resume it after their return date."
        case ReplyLabel.BOUNCE if sub_label == "hard":
            step = "Hard bounce: the address is suppressed; find a current address for the contact."
        case ReplyLabel.BOUNCE:
            step = "Soft bounce: counted toward the mailbox's health; retry once later at most."
        case ReplyLabel.COMPLAINT:
            step = "Spam complaint: the address is suppressed and the mailbox's health updated; "
            step += "review the campaign's targeting."
    if confidence < REVIEW_BELOW and label not in {ReplyLabel.BOUNCE, ReplyLabel.COMPLAINT}:
        step += f" Low confidence ({confidence:.2f}): a person should confirm the label."
    return step


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """ECE with equal-width bins: the weighted mean |accuracy - confidence| per bin."""
    if not confidences:
        return 0.0
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [
            i for i, c in enumerate(confidences) if (low < c <= high) or (b == 0 and c == 0.0)
        ]
        if not members:
            continue
        accuracy = sum(correct[i] for i in members) / len(members)
        mean_confidence = sum(confidences[i] for i in members) / len(members)
        total += len(members) / len(confidences) * abs(accuracy - mean_confidence)
    return total
