"""The built-in world's benchmark: questions in LLaVA's eval format drawn from the held-out
split's scenes (VQA kinds, or REC expressions), answered greedily by a model and scored
with VQA soft accuracy or REC accuracy at IoU 0.5."""

from __future__ import annotations

import random
from pathlib import Path

from genixer.core.record import write_jsonl
from genixer.evaluation import rec_accuracy, vqa_accuracy
from genixer.models.generation import generate
from genixer.world.base import WorldImage, load_image
from genixer.world.questions import KINDS

QUESTIONS = "benchmark_questions.jsonl"
ANSWERS = "benchmark_answers.jsonl"


def benchmark_questions(images: list[WorldImage], per_image: int, seed: int) -> list[dict]:
    """Questions in LLaVA's eval format (``question_id, image, text, category``) plus the
    ground-truth ``answer``. Kinds are drawn uniformly per image among those it allows."""
    rng = random.Random(f"{seed}:benchmark")
    out = []
    for img in images:
        kinds = list(KINDS)
        rng.shuffle(kinds)
        asked = 0
        for kind in kinds:
            got = kind.ask(img.scene, rng)
            if got is None:
                continue
            out.append(
                {
                    "question_id": f"{img.id}-{kind.name}",
                    "image": img.path,
                    "image_id": img.id,
                    "text": got[0],
                    "category": kind.name,
                    "answer": got[1],
                }
            )
            asked += 1
            if asked == per_image:
                break
    return out


def evaluate_vqa(
    model,
    processor,
    questions: list[dict],
    *,
    root: Path,
    batch_size: int,
    max_new_tokens: int,
    answers_path: Path,
    model_id: str,
    metric: str,
) -> dict:
    """Greedy answers for every question; writes LLaVA's answers file; returns accuracy
    (``metric``: VQA soft accuracy or REC accuracy at IoU 0.5) overall and per category."""
    rows, per_cat = [], {}
    for b in range(0, len(questions), batch_size):
        batch = questions[b : b + batch_size]
        items = [(load_image(root, q["image"]), [(q["text"], None)]) for q in batch]
        preds = generate(
            model,
            processor,
            items,
            [0] * len(batch),
            max_new_tokens=max_new_tokens,
            temperature=0.0,
        )
        for q, p in zip(batch, preds, strict=True):
            acc = SCORERS[metric](p, q["answer"])
            per_cat.setdefault(q["category"], []).append(acc)
            rows.append(
                {
                    "question_id": q["question_id"],
                    "prompt": q["text"],
                    "text": p,
                    "answer_id": f"{model_id}-{q['question_id']}",
                    "model_id": model_id,
                    "metadata": {"gt": q["answer"], "accuracy": acc},
                }
            )
    write_jsonl(answers_path, rows)
    allacc = [a for v in per_cat.values() for a in v]
    return {
        "accuracy": round(sum(allacc) / max(1, len(allacc)), 4),
        "per_category": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_cat.items())},
        "questions": len(allacc),
    }


def rec_questions(images: list[WorldImage], per_image: int, seed: int) -> list[dict]:
    """REC benchmark items: the REC task's own question; ``answer`` is the true box text."""
    from genixer.tasks import get_task

    rec = get_task("rec")
    rng = random.Random(f"{seed}:rec-benchmark")
    out = []
    for img in images:
        for k in range(per_image):
            sample = rec.sample(img.scene, rng)
            if sample is None:
                continue
            ((q, a),) = rec.conversation(sample)
            out.append(
                {
                    "question_id": f"{img.id}-rec{k}",
                    "image": img.path,
                    "image_id": img.id,
                    "text": q,
                    "category": sample[0].kind,
                    "answer": a,
                }
            )
    return out


def rec_prediction_score(prediction: str, answer: str) -> float:
    """1.0 when the first box in the prediction has IoU >= 0.5 with the true box."""
    from genixer.core.boxes import BoxParseError, find_brackets, parse_box

    try:
        found = find_brackets(prediction)
        box = parse_box(found[0][2]) if found else None
    except BoxParseError:
        box = None
    return rec_accuracy([box], [parse_box(answer)])


SCORERS = {"vqa": lambda p, a: vqa_accuracy(p, [a]), "rec": rec_prediction_score}
QUESTION_MAKERS = {"vqa": benchmark_questions, "rec": rec_questions}
