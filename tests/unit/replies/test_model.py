"""The shipped model: trained from the shipped data, calibrated output, and the rules."""

from __future__ import annotations

import hashlib

from shared.replies.dataset import EVAL_PATH, TRAIN_PATH, load
from shared.replies.linear import ReplyModel, platt
from shared.replies.model import effects, expected_calibration_error, next_step
from shared.replies.schemas import ReplyLabel


def test_the_shipped_weights_come_from_the_shipped_training_data() -> None:
    model = ReplyModel.load()
    digest = hashlib.sha256(TRAIN_PATH.read_bytes()).hexdigest()[:12]
    # Editing data/train.txt without re-running `python -m shared.replies.train` fails here.
    assert model.version == f"linear-{digest}"


def test_the_labelled_sets_are_large_enough_and_disjoint() -> None:
    train, evaluation = load(TRAIN_PATH), load(EVAL_PATH)
    assert len(train) >= 300
    assert len(evaluation) >= 100
    assert not {r.text for r in train} & {r.text for r in evaluation}
    assert {r.label for r in train} >= {"positive", "neutral", "objection", "unsubscribe", "ooo"}
    assert len({r.lang for r in train}) >= 6


def test_prediction_has_a_label_sub_label_and_probability_like_confidence() -> None:
    prediction = ReplyModel.load().predict("We already use Outreach and are happy with it.")
    assert prediction.label == "objection"
    assert prediction.sub_label == "competitor"
    assert 0.0 < prediction.confidence < 1.0
    assert platt(0.5, 2.0, 0.0) == 0.5


def test_a_label_trained_with_one_sub_label_predicts_it() -> None:
    """complaint/abuse is complaint's only sub-label in the training data: no sub-label head
    is fitted for it, and its predictions still say abuse."""
    model = ReplyModel.load()
    assert model.sole_sub_labels["complaint"] == "abuse"
    prediction = model.predict("This is spam. I never signed up and I have reported you.")
    assert (prediction.label, prediction.sub_label) == ("complaint", "abuse")


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert abs(expected_calibration_error([0.9] * 10, [True] * 5 + [False] * 5) - 0.4) < 1e-9


def test_effects_and_next_steps_for_every_label() -> None:
    assert effects(ReplyLabel.BOUNCE, "hard").suppress
    assert not effects(ReplyLabel.BOUNCE, "soft").suppress
    assert effects(ReplyLabel.BOUNCE, "soft").counts_as_bounce
    assert effects(ReplyLabel.COMPLAINT, "abuse").suppress
    assert effects(ReplyLabel.UNSUBSCRIBE, None).suppress
    assert effects(ReplyLabel.POSITIVE, None).intent_event
    for label in ReplyLabel:
        assert next_step(label, None, 0.9)
    assert "confirm" in next_step(ReplyLabel.POSITIVE, None, 0.3)
