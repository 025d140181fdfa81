"""Benchmark metrics: VQA soft accuracy, exact match, POPE, multiple choice, REC.

Per-sample scorers (``vqa_accuracy``, ``exact_match``) return a float in [0, 1]; the
aggregate ones take parallel lists and raise ``ValueError`` on empty or unequal lists.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from genixer.core.text import normalize_answer


def _check_parallel(a: Sequence[object], b: Sequence[object], what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} predictions but {len(b)} references")
    if not a:
        raise ValueError(f"{what}: no samples")


def vqa_accuracy(prediction: str, gt_answers: Sequence[str]) -> float:
    """Soft VQA accuracy of one prediction against its ground-truth answers.

    All answers are normalized with ``normalize_answer``. With ``n >= 2`` answers, each answer
    is left out in turn and the prediction scores ``min(1, matches among the others / k)``
    with ``k = min(3, n - 1)``; the result is the mean over the ``n`` subsets. For the usual
    ten answers (and any ``n >= 4``) this is exactly the official VQAv2 metric; ``k`` shrinks
    for two or three answers so that agreeing with all of them still scores 1. With a single
    answer the score is 1.0 for a normalized exact match and 0.0 otherwise.
    """
    if not gt_answers:
        raise ValueError("vqa_accuracy needs at least one ground-truth answer")
    pred = normalize_answer(prediction)
    gts = [normalize_answer(a) for a in gt_answers]
    if len(gts) == 1:
        return float(pred == gts[0])
    need = min(3, len(gts) - 1)
    total = sum(g == pred for g in gts)
    scores = [min(1.0, (total - (g == pred)) / need) for g in gts]
    return sum(scores) / len(scores)


def exact_match(prediction: str, answer: str) -> float:
    """1.0 if the normalized prediction equals the normalized answer (GQA style), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


YES_NO_RULES = ("first_word", "pope")


def extract_yes_no(text: str, rule: str = "first_word") -> str:
    """Read a yes/no answer.

    ``"first_word"``: ``"yes"`` if the first word is yes, otherwise ``"no"``.
    ``"pope"``: the official POPE evaluation's reading: keep the first sentence (up to the
    first period), drop commas, split on spaces; ``"no"`` if a word is exactly ``No``,
    ``no`` or ``not``, otherwise ``"yes"`` (an answer that never says no counts as yes).
    """
    if rule == "first_word":
        words = re.findall(r"[a-z]+", text.lower())
        return "yes" if words and words[0] == "yes" else "no"
    if rule == "pope":
        words = text.split(".")[0].replace(",", "").split(" ")
        return "no" if {"No", "no", "not"} & set(words) else "yes"
    raise ValueError(f"rule must be one of {YES_NO_RULES}, got {rule!r}")


def pope_metrics(
    predictions: Sequence[str], labels: Sequence[str], rule: str = "first_word"
) -> dict[str, float]:
    """POPE metrics with "yes" as the positive class.

    Predictions are read with ``extract_yes_no(p, rule)`` (``rule="pope"``: the official
    POPE reading); labels must be "yes" or "no" (any case).
    Returns accuracy, precision, recall, f1 and yes_ratio (the fraction of predicted yes);
    a ratio with a zero denominator is 0.0.
    """
    _check_parallel(predictions, labels, "pope_metrics")
    gold = [label.strip().lower() for label in labels]
    if bad := sorted(set(gold) - {"yes", "no"}):
        raise ValueError(f"pope_metrics: labels must be yes/no, got {bad}")
    pred = [extract_yes_no(p, rule) for p in predictions]
    tp = sum(p == "yes" and g == "yes" for p, g in zip(pred, gold, strict=True))
    fp = sum(p == "yes" and g == "no" for p, g in zip(pred, gold, strict=True))
    fn = sum(p == "no" and g == "yes" for p, g in zip(pred, gold, strict=True))
    tn = len(pred) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / len(pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": (tp + fp) / len(pred),
    }


def extract_choice_letter(text: str, num_options: int = 4) -> str | None:
    """The option letter (``"A"``, ``"B"``, ...) an answer picks, or None if it picks none.

    Tried in order: a leading letter alone or followed by ``.``/``:``/``)``/``,`` (``"A"``,
    ``"b."``, ``"(B)"``, ``"B. football"``); a letter after "answer"/"option"/"choice"
    (``"The answer is C"``, ``"Answer: (D)"``); a parenthesized capital anywhere (``"... (C)"``);
    finally a standalone capital letter if there is exactly one distinct such letter (a capital
    "A" followed by a lowercase word counts as the article and is ignored).
    """
    if not 1 <= num_options <= 26:
        raise ValueError(f"num_options must be in 1..26, got {num_options}")
    letters = string.ascii_uppercase[:num_options]
    s = text.strip()
    leading = re.match(rf"\(?([{letters}{letters.lower()}])(?:\)|[.:,]|$)", s)
    if leading:
        return leading.group(1).upper()
    phrase = re.search(
        rf"(?i:\b(?:answer|option|choice))(?:\s+is)?\s*[:\-]?\s*\(?([{letters}])(?![A-Za-z'])",
        s,
    )
    if phrase:
        return phrase.group(1)
    paren = re.search(rf"\(([{letters}])\)", s)
    if paren:
        return paren.group(1)
    found = {
        m.group(1)
        for m in re.finditer(rf"(?<![A-Za-z'])([{letters}])(?![A-Za-z'])", s)
        if not (m.group(1) == "A" and re.match(r"\s+[a-z]", s[m.end() :]))
    }
    return found.pop() if len(found) == 1 else None


def multiple_choice_accuracy(
    predictions: Sequence[str], answers: Sequence[str], num_options: int = 4
) -> float:
    """Fraction of predictions whose extracted letter equals the answer's letter.

    Both sides go through ``extract_choice_letter``; an unreadable prediction is wrong, an
    unreadable answer raises ``ValueError``.
    """
    _check_parallel(predictions, answers, "multiple_choice_accuracy")
    correct = 0
    for pred, ans in zip(predictions, answers, strict=True):
        gold = extract_choice_letter(ans, num_options)
        if gold is None:
            raise ValueError(f"multiple_choice_accuracy: unreadable answer {ans!r}")
        correct += extract_choice_letter(pred, num_options) == gold
    return correct / len(predictions)


def rec_accuracy(
    pred_boxes: Sequence[Sequence[float] | None],
    gt_boxes: Sequence[Sequence[float]],
    iou_threshold: float = 0.5,
) -> float:
    """Referring-expression accuracy: fraction of boxes with IoU >= ``iou_threshold``.

    Boxes are ``(x0, y0, x1, y1)`` in one frame; a ``None`` prediction (unparsable) is a miss.
    """
    from genixer.core.boxes import iou  # lazy: genixer.core.boxes owns IoU

    _check_parallel(pred_boxes, gt_boxes, "rec_accuracy")
    hits = sum(
        p is not None and iou(p, g) >= iou_threshold
        for p, g in zip(pred_boxes, gt_boxes, strict=True)
    )
    return hits / len(pred_boxes)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` against binary ``labels`` (ties count half);
    None when only one class is present."""
    _check_parallel(scores, labels, "scores and labels")
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    # Rank-sum (Mann-Whitney U) with average ranks for ties: O(n log n).
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_pos = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
