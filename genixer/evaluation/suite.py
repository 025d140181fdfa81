"""A model in memory scored on a benchmark read from its own released files: the loaders of
:mod:`genixer.evaluation.benchmarks`, LLaVA's question file, greedy answers
(:func:`~genixer.evaluation.answering.answer_with`) and the scorer of
:mod:`genixer.evaluation.runner`, in one call (the pipeline's downstream arms use it; the
same steps as ``python -m genixer.evaluate prepare`` then ``run``).

Each benchmark reports one headline number (``score``): POPE's F1 (what LLaVA-1.5's table
reports), every other benchmark's accuracy; None for a split without ground truth (VQAv2
test-dev, VizWiz test: their servers score the answers file).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from genixer.core.ledger import SkipLedger
from genixer.evaluation.answering import answer_with, read_questions
from genixer.evaluation.benchmarks import BENCHMARKS, load_benchmark
from genixer.evaluation.runner import read_answers, score, write_questions

HEADLINE = {"pope": "f1"}  # the metric a benchmark's table reports; others: accuracy
QUESTIONS, ANSWERS, METRICS = "questions.jsonl", "answers.jsonl", "metrics.json"


def headline(result: dict) -> float:
    """The number a table reports for a scored benchmark."""
    return float(result[HEADLINE.get(BENCHMARKS[result["benchmark"]].metric, "accuracy")])


def limited(items: dict, max_questions: int | None, seed: int) -> dict:
    """A seeded subset of ``max_questions`` items (all of them when None or more)."""
    if max_questions is None or len(items) <= max_questions:
        return items
    keep = set(random.Random(f"{seed}:benchmark").sample(sorted(items), int(max_questions)))
    return {qid: it for qid, it in items.items() if qid in keep}


def evaluate_files(
    model,
    processor,
    *,
    benchmark: str,
    annotations: list[str],
    images: str | Path,
    folder: str | Path,
    options: dict | None = None,
) -> tuple[dict, SkipLedger]:
    """Score ``model`` (with its ``processor``) on ``benchmark`` read from ``annotations``,
    its images under ``images``; writes the question, answers and metrics files into
    ``folder``. ``options``: ``split`` (ScienceQA), ``box_frame`` (REC), ``max_questions``
    and ``seed`` (a seeded subset), ``batch_size``, ``max_new_tokens``, ``model_id``.
    Returns the metrics and the ledger of what was left out (bad ground-truth records,
    images that do not open, prompts too long for the model)."""
    o = dict(options or {})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items, ledger = load_benchmark(benchmark, annotations, o.get("split", ""))
    items = limited(items, o.get("max_questions"), int(o.get("seed", 0)))
    inline = any(it.image_b64 is not None for it in items.values())
    image_folder = folder / "images" if inline else Path(images)
    prepared = write_questions(items, folder / QUESTIONS, image_folder if inline else None)
    for row in prepared["ledger"].rows:
        ledger.add(**{k: v for k, v in row.items() if k != "stage"})
    answering = answer_with(
        model,
        processor,
        read_questions(folder / QUESTIONS, ledger),
        image_folder=image_folder,
        answers_file=folder / ANSWERS,
        ledger=ledger,
        model_id=o.get("model_id", "model"),
        batch_size=int(o.get("batch_size", 16)),
        max_new_tokens=int(o.get("max_new_tokens", 64)),
    )
    answers, bad_rows = read_answers(folder / ANSWERS)
    if any(it.truth is not None for it in items.values()):
        result = score(benchmark, items, answers, o.get("box_frame", "original"))
        result["score"] = round(headline(result), 6)
    else:  # a test split scored by its server (VQAv2 test-dev, VizWiz test): answers only
        result = {"benchmark": benchmark, "questions": len(items), "score": None}
        result["unscored"] = f"no ground truth: submit {folder / ANSWERS} to its server"
    result["answering"] = answering
    result["skipped_answer_rows"] = dict(bad_rows)
    (folder / METRICS).write_text(json.dumps(result, indent=2, sort_keys=True))
    return result, ledger
