"""Answer a LLaVA-format question file with a project VLM, resumably.

Rows are ``{"question_id", "image", "text", ...}``; answers are written as LLaVA's
``{"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}``. Each batch is
appended (and flushed) as soon as it is generated, so a killed run loses one batch; a re-run
keeps the answers already there and only answers the rest. At the end the file is rewritten
atomically in question order. Greedy by default; with a temperature each question is
sampled with its own seed (``stable_seed(seed, question_id)``), whatever the batch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from genixer.core.chat import IMAGE_TOKEN
from genixer.core.images import ImageError, open_rgb, safe_join
from genixer.core.ledger import SkipLedger
from genixer.core.record import read_jsonl, stable_seed, write_jsonl
from genixer.models.generation import generate
from genixer.models.hf import model as hf
from genixer.models.llava.model import load_vlm, processor_for
from genixer.models.tokenizer import load_checkpoint_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def read_questions(path: str | Path, ledger: SkipLedger) -> list[dict]:
    """Question rows in file order; rows without an id, image or text and repeated ids are
    left out with their reason."""
    rows, seen = [], set()
    for n, row in enumerate(read_jsonl(path)):
        if not all(row.get(k) not in (None, "") for k in ("question_id", "image", "text")):
            ledger.add("bad_question_row", id=str(row.get("question_id", f"line{n}")))
            continue
        qid = str(row["question_id"])
        if qid in seen:
            ledger.add("duplicate_question_id", id=qid)
            continue
        seen.add(qid)
        rows.append(row)
    return rows


def _existing(path: Path, wanted: set[str]) -> dict[str, dict]:
    """Answer rows already in ``path`` for the wanted ids (a torn last line is ignored)."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: answered again
            qid = str(row.get("question_id"))
            if qid in wanted and qid not in done and isinstance(row.get("text"), str):
                done[qid] = row
    return done


def _encodable_batch(
    batch: list[dict], image_folder: str, processor, ledger: SkipLedger
) -> tuple[list[tuple], list[dict]]:
    """The batch's ``(image, turns)`` items and their question rows, in order.

    A question whose image cannot be opened, or whose prompt does not fit the model, is
    left out with its reason here, so that one bad row never fails the whole batch.
    """
    items, kept = [], []
    for q in batch:
        qid = str(q["question_id"])
        try:
            image = open_rgb(safe_join(image_folder, q["image"]))
        except ImageError as err:
            ledger.add(f"image_{err.reason}", id=qid, path=str(q["image"]))
            continue
        turns = [(q["text"].replace(IMAGE_TOKEN, "").strip(), None)]
        try:
            processor.encode(image, turns, generation=True)
        except ValueError as err:
            ledger.add("prompt_too_long", id=qid, detail=str(err)[:80])
            continue
        items.append((image, turns))
        kept.append(q)
    return items, kept


def _load_model(
    model_path: str, tokenizer_path: str | None, device: str, dtype: str, family: str = "genixer"
):
    """The model in eval mode on ``device``, and its processor (prompts may use the
    model's whole context; the tokenizer is the checkpoint's unless one is named). An hf
    family folder brings its own processor and chat template."""
    if family == "hf":
        model = hf.load_model(model_path, dtype=DTYPES[dtype]).to(device).eval()
        return model, hf.load_processor(model_path)
    model = load_vlm(model_path, dtype=DTYPES[dtype]).to(device).eval()
    tokenizer = load_checkpoint_tokenizer(tokenizer_path or model_path)
    processor = processor_for(
        model, tokenizer, max_length=model.config.text_config.max_position_embeddings
    )
    return model, processor


def _answer_row(question: dict, prompt: str, text: str, *, model_id: str, metadata: dict) -> dict:
    """One answer in LLaVA's answers-file format."""
    return {
        "question_id": question["question_id"],
        "prompt": prompt,
        "text": text,
        "answer_id": f"{model_id}-{question['question_id']}",
        "model_id": model_id,
        "metadata": metadata,
    }


def answer_questions(
    *,
    model_path: str,
    question_file: str,
    image_folder: str,
    answers_file: str,
    tokenizer_path: str | None = None,
    model_id: str | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    family: str = "genixer",
) -> dict:
    """Answer every question of ``question_file``; returns counts for the metrics file.
    ``family``: ``genixer`` (the project's LLaVA / Shikra folders) or ``hf`` (any
    transformers image-text-to-text chat model, genixer.models.family)."""
    ledger = SkipLedger("evaluate")
    questions = read_questions(question_file, ledger)
    model, processor = _load_model(model_path, tokenizer_path, device, dtype, family)
    return answer_with(
        model,
        processor,
        questions,
        image_folder=image_folder,
        answers_file=answers_file,
        ledger=ledger,
        model_id=model_id or Path(model_path).name,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
    )


def answer_with(
    model,
    processor,
    questions: list[dict],
    *,
    image_folder: str | Path,
    answers_file: str | Path,
    ledger: SkipLedger,
    model_id: str,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
) -> dict:
    """Answer question rows with a model in memory and its processor (anything with
    ``encode(image, turns, generation=True)`` that :func:`generate` drives); resumable as
    :func:`answer_questions`, whose counts it returns."""
    answers_path = Path(answers_file)
    answers_path.parent.mkdir(parents=True, exist_ok=True)
    done = _existing(answers_path, {str(q["question_id"]) for q in questions})
    todo = [q for q in questions if str(q["question_id"]) not in done]
    t0, new = time.perf_counter(), 0
    with open(answers_path, "a") as out:
        for start in range(0, len(todo), batch_size):
            items, kept = _encodable_batch(
                todo[start : start + batch_size], str(image_folder), processor, ledger
            )
            if not items:
                continue
            seeds = [stable_seed(seed, q["question_id"]) for q in kept]
            texts = generate(
                model,
                processor,
                items,
                seeds,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
            )
            for q, (_, turns), text in zip(kept, items, texts, strict=True):
                metadata = {"temperature": temperature, "seed": seed}
                row = _answer_row(q, turns[0][0], text, model_id=model_id, metadata=metadata)
                done[str(q["question_id"])] = row
                out.write(json.dumps(row, sort_keys=True) + "\n")
                new += 1
            out.flush()
    seconds = time.perf_counter() - t0
    order = [str(q["question_id"]) for q in questions if str(q["question_id"]) in done]
    write_jsonl(answers_path, (done[qid] for qid in order))
    ledger.write(answers_path.parent, f"{answers_path.stem}.skipped.jsonl")
    return {
        "questions": len(questions),
        "answered": len(order),
        "answered_now": new,
        "resumed": len(order) - new,
        "skipped": dict(ledger.counts),
        "questions_per_s": round(new / seconds, 2) if new and seconds > 0 else None,
    }
