"""A finished run's folder in under a second, for the viewer, card and export tests.

No model is trained: the built-in world is rendered, each pool image gets ground-truth
samples of a few generic and grounding tasks (as the generator would write them, oracle
verdicts from the tasks' own oracles, a few made false), and the real dedup, selection and
ledger code writes the stage folders in the cache layout (``cache/<stage>/<key>/``) that
``summary.json`` names, as a pipeline run does."""

from __future__ import annotations

import json
import random
from pathlib import Path

from genixer.core.ledger import SkipLedger, merge_ledgers
from genixer.core.record import QA, Record, read_jsonl, write_jsonl
from genixer.filters.selection import select
from genixer.pipeline.stages.dedup import run_dedup
from genixer.sources.shapes import ShapesWorld
from genixer.tasks import get_task

TASKS = ("common", "mcvqa", "rec", "pointqa", "reg")
SCRIPT = "<script>alert(1)</script>"
THRESHOLD = 0.5


def _records(pool, rng: random.Random) -> list[Record]:
    out = []
    for img in pool:
        for n, name in enumerate(TASKS):
            task = get_task(name)
            turns = task.sample(img.scene, rng)
            if not turns:
                continue
            if rng.random() < 0.4 and name == "common":  # a wrong answer
                turns[0].answer = "no" if turns[0].answer != "no" else "yes"
            rec = Record(
                f"{img.id}-{name}",
                img.id,
                img.path,
                name,
                "generic",
                turns,
                task.serialize(turns),
                provenance={"generator": "genixer_l", "template_id": f"t{n}", "seed": n},
            )
            rec.oracle = task.oracle_error(img.scene, turns) is None
            out.append(rec)
    first = pool[0]
    out.append(  # a generated <script> must show as text
        Record(
            f"{first.id}-script",
            first.id,
            first.path,
            "common",
            "generic",
            [QA(SCRIPT, "yes", kind="existence")],
            f"Question: {SCRIPT} Answer: yes",
            provenance={"generator": "genixer_l", "template_id": "t0", "seed": 9},
        )
    )
    dup = out[0]
    out.append(Record.from_dict(json.loads(dup.to_json()) | {"id": dup.id + "-again"}))
    return out


def make_tiny_run(root: Path) -> Path:
    """Write a run under ``root`` (``root/out/summary.json``); return the summary's path."""
    cache, out_dir = root / "cache", root / "out"
    world_dir = cache / "world" / "w0"
    pool = ShapesWorld(seed=0, splits={"pool": 6}).materialize(world_dir)["pool"]
    world_skips = SkipLedger("world")
    world_skips.add("corrupt", path="broken.png", detail="not an image")
    world_skips.write(world_dir)
    records = _records(pool, random.Random(0))
    gen_dir = cache / "generate" / "g0"
    write_jsonl(gen_dir / "records.jsonl", (r.to_json() for r in records))
    failure = {
        "id": "fail-1",
        "image_id": pool[1].id,
        "raw": "Question: what",
        "reason": "no_answer",
    }
    write_jsonl(gen_dir / "parse_failures.jsonl", [failure | {"detail": "no_answer: what"}])
    dedup_dir = cache / "dedup" / "d0"
    dedup_info = run_dedup(records, dedup_dir, True, None)
    kept_after_dedup = [r for r in records if not r.id.endswith("-again")]
    scores = {r.id: round(random.Random(r.id).random(), 3) for r in kept_after_dedup}
    score_dir = cache / "score" / "s0"
    write_jsonl(score_dir / "scores.jsonl", [{"id": k, "score": v} for k, v in scores.items()])
    kept, select_info = select(kept_after_dedup, scores, None, THRESHOLD)
    select_dir = cache / "select" / "k0"
    write_jsonl(select_dir / "selected.jsonl", (r.to_json() for r in kept))
    judged = [r.oracle for r in records if r.oracle is not None]
    summary = {
        "generation": {
            "records": str(gen_dir / "records.jsonl"),
            "deduplicated_records": str(dedup_dir / "records.jsonl"),
            "num_records": len(records),
            "num_deduplicated": dedup_info["num_records"],
            "duplicates": dedup_info["duplicates"],
            "parse_failures": 1,
            "parse_failure_reasons": {"no_answer": 1},
            "oracle_accuracy": round(sum(judged) / len(judged), 4),
        },
        "filter": {"name": "oracle", "scores": str(score_dir / "scores.jsonl"), "auroc": None},
        "select": select_info | {"records": str(select_dir / "selected.jsonl")},
        "skipped": merge_ledgers([world_dir, dedup_dir], out_dir / "skipped.jsonl"),
        "stages": {"select": {"key": "k0", "status": "ran", "seconds": 0.0}},
        "world_root": str(world_dir),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return out_dir / "summary.json"


def expected_entries(summary_path: Path) -> list[dict]:
    """What the viewer must show: one row per record, parse failure and skipped input, with
    the fields the tests filter on, read straight from the run's files."""
    summary = json.loads(summary_path.read_text())
    kept = {r["id"] for r in read_jsonl(summary["select"]["records"])}
    scores = {r["id"]: r["score"] for r in read_jsonl(summary["filter"]["scores"])}
    rows = []
    for r in read_jsonl(summary["generation"]["records"]):
        status = "kept" if r["id"] in kept else "dropped"
        if r["id"].endswith("-again"):
            status = "duplicate"
        rows.append(
            {
                "id": r["id"],
                "task": r["task"],
                "status": status,
                "score": scores.get(r["id"]),
                "oracle": r["oracle"],
                "kinds": {t["kind"] for t in r["turns"] if t["kind"]},
            }
        )
    rows.append({"id": "fail-1", "status": "parse_failure"})
    rows.append({"id": "skip-0-world", "status": "skipped"})
    return rows
