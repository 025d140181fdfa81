"""Tests for genixer.evaluation against hand-computed values."""

from __future__ import annotations

import importlib

import pytest

from genixer.evaluation import (
    exact_match,
    extract_choice_letter,
    extract_yes_no,
    multiple_choice_accuracy,
    normalize_answer,
    pope_metrics,
    rec_accuracy,
    vqa_accuracy,
)

# --- normalization -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Yes  ", "yes"),
        ("The dog", "dog"),
        ("a cat and an apple", "cat and apple"),
        ("Two", "2"),
        ("none", "0"),
        ("there are three dogs", "there are 3 dogs"),
        ("2.5", "2.5"),
        (".5", ".5"),
        ("1,000", "1000"),
        ("It is red.", "it is red"),
        ("yes, it is!", "yes it is"),
        ("black/white", "black white"),
        ("t-shirt", "t shirt"),
        ("(left)", "left"),
        ("dont", "don't"),
        ("isnt", "isn't"),
        ("don't", "don't"),
        ("man's hat", "man's hat"),
        ("shed", "shed"),
        ("a\tb\nc  d", "b c d"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


# --- VQA soft accuracy -------------------------------------------------------------------


def _answers(matching: int, answer: str = "2", other: str = "3") -> list[str]:
    return [answer] * matching + [other] * (10 - matching)


@pytest.mark.parametrize(
    ("matching", "expected"),
    [
        (0, 0.0),
        # removing a match leaves 0 -> 0; removing a non-match leaves 1 -> 1/3
        (1, (1 * 0 + 9 * (1 / 3)) / 10),
        # 2 matches: removing a match leaves 1 -> 1/3; a non-match leaves 2 -> 2/3
        (2, (2 * (1 / 3) + 8 * (2 / 3)) / 10),
        # 3 matches: (3 * 2/3 + 7 * 1) / 10 = 0.9
        (3, 0.9),
        (4, 1.0),
        (10, 1.0),
    ],
)
def test_vqa_accuracy_ten_answers(matching: int, expected: float) -> None:
    assert vqa_accuracy("2", _answers(matching)) == pytest.approx(expected)


def test_vqa_accuracy_normalizes_both_sides() -> None:
    gts = ["two"] * 3 + ["3"] * 7
    assert vqa_accuracy("Two.", gts) == pytest.approx(0.9)
    assert vqa_accuracy("The 2", gts) == pytest.approx(0.9)


def test_vqa_accuracy_few_answers() -> None:
    assert vqa_accuracy("Yes.", ["yes"]) == 1.0
    assert vqa_accuracy("no", ["yes"]) == 0.0
    # two answers: k = 1
    assert vqa_accuracy("yes", ["yes", "yes"]) == 1.0
    assert vqa_accuracy("yes", ["yes", "no"]) == pytest.approx(0.5)
    # three answers: k = 2; one match -> (0 + 1/2 + 1/2) / 3
    assert vqa_accuracy("yes", ["yes", "no", "no"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        vqa_accuracy("yes", [])


def test_exact_match() -> None:
    assert exact_match("The Red car.", "red car") == 1.0
    assert exact_match("two", "2") == 1.0
    assert exact_match("red", "blue") == 0.0


# --- POPE --------------------------------------------------------------------------------


def test_extract_yes_no() -> None:
    assert extract_yes_no("Yes, there is a dog.") == "yes"
    assert extract_yes_no("  YES") == "yes"
    assert extract_yes_no("No.") == "no"
    assert extract_yes_no("There is a dog, yes") == "no"
    assert extract_yes_no("") == "no"


def test_pope_metrics_hand_example() -> None:
    preds = ["Yes, there is.", "No.", "yes", "There is a dog", "no", "YES"]
    labels = ["yes", "yes", "no", "yes", "no", "Yes"]
    # read as: yes no yes no no yes -> tp=2 (0, 5), fp=1 (2), fn=2 (1, 3), tn=1 (4)
    m = pope_metrics(preds, labels)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(4 / 7)
    assert m["yes_ratio"] == pytest.approx(3 / 6)


def test_pope_metrics_degenerate_and_errors() -> None:
    m = pope_metrics(["no", "no"], ["yes", "no"])
    assert m["precision"] == 0.0 and m["f1"] == 0.0 and m["accuracy"] == 0.5
    with pytest.raises(ValueError):
        pope_metrics(["yes"], ["yes", "no"])
    with pytest.raises(ValueError):
        pope_metrics(["yes"], ["maybe"])
    with pytest.raises(ValueError):
        pope_metrics([], [])


# --- multiple choice ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A", "A"),
        ("b", "B"),
        ("A.", "A"),
        ("(B)", "B"),
        ("C)", "C"),
        ("B. football", "B"),
        ("D: a red ball", "D"),
        ("The answer is C", "C"),
        ("The answer is C.", "C"),
        ("Answer: (D)", "D"),
        ("I would pick option B because it fits", "B"),
        ("It must be (C) since the ball is red", "C"),
        ("I think B", "B"),
        ("A dog is playing", None),
        ("E", None),
        ("either B or C", None),
        ("", None),
    ],
)
def test_extract_choice_letter(text: str, expected: str | None) -> None:
    assert extract_choice_letter(text) == expected


def test_extract_choice_letter_num_options() -> None:
    assert extract_choice_letter("E", num_options=5) == "E"
    assert extract_choice_letter("C", num_options=2) is None
    with pytest.raises(ValueError):
        extract_choice_letter("A", num_options=0)


def test_multiple_choice_accuracy() -> None:
    preds = ["A", "The answer is B", "(C) cat", "no idea"]
    answers = ["A", "B", "D", "A"]
    assert multiple_choice_accuracy(preds, answers) == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        multiple_choice_accuracy(["A"], ["A", "B"])
    with pytest.raises(ValueError):
        multiple_choice_accuracy(["A"], ["???"])


# --- REC ---------------------------------------------------------------------------------


def test_rec_accuracy() -> None:
    try:
        boxes = importlib.import_module("genixer.core.boxes")
    except ImportError:
        pytest.skip("genixer.core.boxes not available yet")
    if not hasattr(boxes, "iou"):
        pytest.skip("genixer.core.boxes.iou not available yet")
    gt = [(0.0, 0.0, 1.0, 1.0)] * 4
    preds = [
        (0.0, 0.0, 1.0, 1.0),  # IoU 1
        (0.0, 0.0, 1.0, 0.6),  # IoU 0.6 -> hit
        (0.0, 0.0, 1.0, 0.4),  # IoU 0.4 -> miss
        None,  # unparsable -> miss
    ]
    assert rec_accuracy(preds, gt) == pytest.approx(2 / 4)
    assert rec_accuracy(preds, gt, iou_threshold=0.3) == pytest.approx(3 / 4)
