"""Score a LLaVA-format answers file against a benchmark's items; write question files.

Answers files are jsonl rows ``{"question_id", "text", ...}`` (what LLaVA's
``model_vqa_loader`` and ``python -m genixer.evaluate`` write); ids are matched as strings.
A question without an answer scores 0 and is counted (``missing_answers``); an answer to no
known question is counted (``extra_answers``) and ignored.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections import Counter
from pathlib import Path

from PIL import Image

from genixer.core.boxes import BoxParseError, find_brackets, iou, parse_box, to_original
from genixer.core.ledger import SkipLedger
from genixer.core.record import write_jsonl
from genixer.evaluation.benchmarks import BENCHMARKS, Item
from genixer.evaluation.metrics import (
    exact_match,
    extract_choice_letter,
    pope_metrics,
    vqa_accuracy,
)

BOX_FRAMES = ("original", "padded")
IOU_THRESHOLD = 0.5


def read_answers(path: str | Path) -> tuple[dict[str, str], Counter]:
    """``{str(question_id): text}`` from an answers jsonl; the first answer of an id wins.
    Returns also the counts of rows left out (``duplicate_answer``, ``bad_answer_row``)."""
    answers: dict[str, str] = {}
    skipped: Counter = Counter()
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                qid, text = str(row["question_id"]), row["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                skipped["bad_answer_row"] += 1
                continue
            if qid in answers:
                skipped["duplicate_answer"] += 1
                continue
            answers[qid] = text if isinstance(text, str) else str(text)
    return answers, skipped


def first_box(text: str) -> tuple[float, float, float, float] | None:
    """The first ``[x0,y0,x1,y1]`` in a prediction, or None when there is no readable one."""
    try:
        for _, _, inner in find_brackets(text):
            return parse_box(inner, strict=False)
    except BoxParseError:
        return None
    return None


def _rec_hit(pred: str, item: Item, frame: str) -> tuple[bool, bool]:
    """(hit at IoU >= 0.5, parsed)."""
    box = first_box(pred)
    if box is None:
        return False, False
    if frame == "padded" and item.size is not None:
        box = to_original(box, *item.size)
    return iou(box, item.truth) >= IOU_THRESHOLD, True


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 6) if values else 0.0


def _pope_scores(graded: dict[str, Item], preds: dict[str, str]) -> dict:
    """POPE's yes/no metrics over all graded items, then per category (its question sets:
    random, popular, adversarial). Precision, recall and F1 are not means of per-item
    scores, so POPE does not go through :func:`_item_scores`."""
    cats = sorted({it.category for it in graded.values()})
    out = pope_metrics(list(preds.values()), [it.truth for it in graded.values()], "pope")
    out["per_category"] = {
        c: pope_metrics(
            [preds[q] for q, it in graded.items() if it.category == c],
            [it.truth for it in graded.values() if it.category == c],
            "pope",
        )
        for c in cats
    }
    return out


def _item_scores(
    metric: str,
    graded: dict[str, Item],
    preds: dict[str, str],
    answers: dict[str, str],
    box_frame: str,
) -> tuple[dict[str, float], int]:
    """Each graded item's score in [0, 1] under ``metric``, and how many answers (REC only)
    held no readable box; a missing answer scores 0 but is not counted as unparsable."""
    per_item: dict[str, float] = {}
    unparsable = 0
    for qid, it in graded.items():
        pred = preds[qid]
        if metric == "vqa":
            per_item[qid] = vqa_accuracy(pred, it.truth)
        elif metric == "exact":
            per_item[qid] = exact_match(pred, it.truth)
        elif metric == "mc":
            per_item[qid] = float(extract_choice_letter(pred, it.num_options) == it.truth)
        elif metric == "rec":
            hit, parsed = _rec_hit(pred, it, box_frame)
            per_item[qid] = float(hit)
            unparsable += not parsed and qid in answers
        else:  # pragma: no cover - BENCHMARKS only names the metrics above
            raise ValueError(metric)
    return per_item, unparsable


def score(
    benchmark: str,
    items: dict[str, Item],
    answers: dict[str, str],
    box_frame: str = "original",
) -> dict:
    """Metrics of ``answers`` on the items that have a truth; see the module docs.

    vqa: VQA soft accuracy; exact: normalized exact match (GQA); mc: the extracted letter
    equals the answer's; rec: the first box in the answer has IoU >= 0.5 with the truth
    (``box_frame="padded"``: answers are normalized to the padded square); pope: accuracy,
    precision, recall, f1, yes_ratio (the official POPE reading of yes/no), per category too.
    """
    if box_frame not in BOX_FRAMES:
        raise ValueError(f"box_frame must be one of {BOX_FRAMES}, got {box_frame!r}")
    metric = BENCHMARKS[benchmark].metric
    graded = {qid: it for qid, it in items.items() if it.truth is not None}
    if not graded:
        raise ValueError(f"{benchmark}: no item has a ground truth to score against")
    missing = [qid for qid in graded if qid not in answers]
    out: dict = {
        "benchmark": benchmark,
        "metric": metric,
        "questions": len(graded),
        "answered": len(graded) - len(missing),
        "missing_answers": len(missing),
        "extra_answers": sum(qid not in items for qid in answers),
        "unscored_items": len(items) - len(graded),
    }
    preds = {qid: answers.get(qid, "") for qid in graded}
    if metric == "pope":
        out.update(_pope_scores(graded, preds))
        return out
    per_item, unparsable = _item_scores(metric, graded, preds, answers, box_frame)
    out["accuracy"] = _mean(list(per_item.values()))
    by_cat: dict[str, list[float]] = {}
    for qid, value in per_item.items():
        by_cat.setdefault(graded[qid].category or "all", []).append(value)
    out["per_category"] = {c: _mean(v) for c, v in sorted(by_cat.items())}
    if metric == "rec":
        out["unparsable_answers"] = unparsable
    return out


def write_questions(
    items: dict[str, Item], path: str | Path, image_folder: str | Path | None = None
) -> dict:
    """Write the LLaVA question file (``question_id, image, text, category``). Items that
    carry their image (MMBench) have it written into ``image_folder`` (required then); an
    image that does not decode is left out with its reason. Returns counts."""
    ledger = SkipLedger("prepare")
    rows = []
    for item in items.values():
        if item.image_b64 is not None:
            if image_folder is None:
                raise ValueError("this benchmark carries its images inline: give an image folder")
            target = Path(image_folder) / item.image
            if not target.is_file():
                try:
                    img = Image.open(io.BytesIO(base64.b64decode(item.image_b64, validate=True)))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    img.convert("RGB").save(target, quality=95)
                except (binascii.Error, OSError, ValueError) as err:
                    ledger.add("bad_inline_image", id=item.question_id, detail=str(err)[:80])
                    continue
        rows.append(
            {
                "question_id": item.question_id,
                "image": item.image,
                "text": item.prompt,
                "category": item.category,
            }
        )
    write_jsonl(path, rows)
    return {"questions": len(rows), "skipped": dict(ledger.counts), "ledger": ledger}
