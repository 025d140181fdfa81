"""Generation: the generator writes samples for unlabeled images, batched and sharded.

Every request (image, sample index) gets a stable id and its own seed, so its text does not
depend on the batch it lands in. Shards are written whole by atomic rename; a re-run skips
shards already on disk, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from pathlib import Path

from genixer.evaluation import normalize_answer
from genixer.models.generation import generate
from genixer.record import Record, read_jsonl, record_id, stable_seed, write_jsonl
from genixer.tasks import AgnosticTask, ParseError, detect_grounding, get_task
from genixer.tasks.generic import detect_generic
from genixer.tasks.templates import instruction
from genixer.world.base import WorldImage, load_image

log = logging.getLogger(__name__)
RECORDS = "records.jsonl"
FAILURES = "parse_failures.jsonl"


def requests(
    images: list[WorldImage], per_image: int, task: str, generator: str, seed: int
) -> list[dict]:
    """What to generate, sorted by id: the order (and so the shards) depend on nothing else."""
    out = []
    for img in images:
        for k in range(per_image):
            s = stable_seed(seed, img.id, task, k)
            template_id, text = instruction(
                None if task == "generic" else task, random.Random(s), 0.0
            )
            rid = record_id(img.id, task, template_id, generator, s)
            out.append(
                {
                    "id": rid,
                    "image_id": img.id,
                    "image": img.path,
                    "seed": s,
                    "template_id": template_id,
                    "instruction": text,
                }
            )
    return sorted(out, key=lambda r: r["id"])


def run_generation(
    model,
    processor,
    reqs: list[dict],
    root: Path,
    folder: Path,
    batch_size: int,
    shard_size: int,
    decoding: dict,
) -> dict:
    shard_dir = folder / "raw"
    shard_dir.mkdir(parents=True, exist_ok=True)
    n_shards = (len(reqs) + shard_size - 1) // shard_size
    done = resumed = 0
    start = time.perf_counter()
    for i in range(n_shards):
        path = shard_dir / f"shard-{i:05d}.jsonl"
        if path.exists():
            resumed += 1
            continue
        chunk = reqs[i * shard_size : (i + 1) * shard_size]
        rows = []
        for b in range(0, len(chunk), batch_size):
            batch = chunk[b : b + batch_size]
            items = [
                (
                    load_image(root, r["image"]),
                    [(r["instruction"], None)],
                )
                for r in batch
            ]
            texts = generate(
                model,
                processor,
                items,
                [r["seed"] for r in batch],
                max_new_tokens=decoding["max_new_tokens"],
                temperature=decoding["temperature"],
                top_p=decoding.get("top_p"),
            )
            rows += [dict(r, raw=t) for r, t in zip(batch, texts, strict=True)]
        write_jsonl(path, rows)
        done += len(chunk)
        rate = done / max(1e-9, time.perf_counter() - start)
        log.info("generation shard %d/%d: %.1f images/s", i + 1, n_shards, rate)
    seconds = time.perf_counter() - start
    return {
        "shards": n_shards,
        "shards_resumed": resumed,
        "generated": done,
        "images_per_s": round(done / seconds, 2) if done else None,
    }


def parse_generations(
    folder: Path,
    task: str,
    members: list[str],
    generator: str,
    decoding: dict,
    scenes: dict[str, object],
) -> dict:
    """Raw shards -> ``records.jsonl`` (parsed, oracle-checked) + ``parse_failures.jsonl``."""
    grounding = all(get_task(m).group == "grounding" for m in members)
    detect = detect_grounding if grounding else detect_generic
    agnostic = AgnosticTask(members, detect) if task == "generic" else None
    records, failures = [], []
    reasons: Counter = Counter()
    for path in sorted((folder / "raw").glob("shard-*.jsonl")):
        for r in read_jsonl(path):
            try:
                if agnostic is not None:
                    t, turns = agnostic.parse(r["raw"])
                else:
                    t = get_task(task)
                    turns = t.parse(r["raw"])
            except ParseError as err:
                reasons[err.reason] += 1
                failures.append(
                    {
                        "id": r["id"],
                        "image_id": r["image_id"],
                        "raw": r["raw"],
                        "reason": err.reason,
                        "detail": str(err),
                    }
                )
                continue
            scene = scenes.get(r["image_id"])
            rec = Record(
                id=r["id"],
                image_id=r["image_id"],
                image=r["image"],
                task=t.name,
                requested_task=task,
                turns=turns,
                raw=r["raw"],
                provenance={
                    "generator": generator,
                    "template_id": r["template_id"],
                    "seed": r["seed"],
                    **decoding,
                },
            )
            rec.oracle = t.check(scene, turns) if scene is not None else None
            records.append(rec)
    write_jsonl(folder / RECORDS, (rec.to_json() for rec in records))
    write_jsonl(folder / FAILURES, failures)
    judged = [r.oracle for r in records if r.oracle is not None]
    kinds = Counter(t.kind or "unknown" for r in records for t in r.turns)
    n_kinds = sum(kinds.values()) or 1
    questions = {normalize_answer(t.question) for r in records for t in r.turns}
    return {
        "num_records": len(records),
        "parse_failures": len(failures),
        "parse_failure_reasons": dict(reasons),
        "oracle_accuracy": round(sum(judged) / len(judged), 4) if judged else None,
        "task_mix": {
            k: round(v / max(1, len(records)), 4)
            for k, v in sorted(Counter(r.task for r in records).items())
        },
        "kind_shares": {k: round(v / n_kinds, 4) for k, v in sorted(kinds.items())},
        "distinct_questions_per_100": round(100 * len(questions) / max(1, len(records)), 2),
    }


def diversity(info: dict, training_shares: dict[str, float]) -> dict:
    """Each question kind's share of the generated records beside its training share."""
    gen = info["kind_shares"]
    per_kind = {}
    for k in sorted(set(gen) | set(training_shares)):
        g, t = gen.get(k, 0.0), training_shares.get(k, 0.0)
        per_kind[k] = {"generated": g, "training": t, "ratio": round(g / t, 3) if t else None}
    ratios = [v["ratio"] for v in per_kind.values() if v["ratio"] is not None]
    return {
        "distinct_questions_per_100": info["distinct_questions_per_100"],
        "kinds": per_kind,
        "max_share_ratio": max(ratios) if ratios else None,
    }


def load_records(folder: Path) -> list[Record]:
    return [Record.from_dict(d) for d in read_jsonl(folder / RECORDS)]


def dump_info(folder: Path, info: dict) -> None:
    (folder / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
