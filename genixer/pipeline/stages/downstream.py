"""The downstream stages: the two arms of the paper's last experiment. Each arm starts a model
(:mod:`genixer.pipeline.downstream_model`), trains the ``downstream.pretrain`` phases on
``pretrain_data`` (projector-only, then full: LLaVA-1.5's two stages), then ``finetune`` on
``finetune_data`` (:mod:`genixer.pipeline.downstream_data`), and answers every entry of
``downstream.benchmarks``. The synthetic arm (``downstream_synthetic``) trains on the run's
export where the entries name it; the baseline arm (``downstream_baseline``) on the same
entries without it, so its key holds nothing of generation or filtering: a sweep sharing a
cache trains it once (``downstream.baseline: false`` leaves it out). The summary reports
each benchmark's two scores and the gain."""

from __future__ import annotations

import logging
from pathlib import Path

from genixer.core.ledger import SkipLedger
from genixer.pipeline.downstream_data import arm_dataset, arm_entries, data_key
from genixer.pipeline.downstream_model import (
    check_checkpoint,
    downstream_model,
    evaluate_benchmark,
    evaluate_world,
    train_phase,
)
from genixer.pipeline.stage import Inputs, RunContext, Stage

log = logging.getLogger(__name__)


def arm_key(ctx: RunContext, arm: str) -> dict:
    d = ctx.cfg.downstream
    return {
        "model": d.model,
        "finetune": d.finetune,
        "seed": d.seed,
        "eval": d.eval,
        "trainer": ctx.trainer_key(),
        "small_set_tasks": d.small_set_tasks,
    } | data_key(ctx, arm)


def train_arm(ctx: RunContext, inputs: Inputs, folder: Path, arm: str, model_and_processor):
    """The arm's training phases; returns their counts for the manifest."""
    d, seed = ctx.cfg.downstream, int(ctx.cfg.downstream.seed)
    model, processor = model_and_processor
    ledger, info = SkipLedger(f"downstream_{arm}"), {}
    if arm == "synthetic":
        info["synthetic_records"] = int(inputs["export"].info.get("entries", 0))
    pre = arm_dataset(ctx, inputs, arm_entries(ctx, "pretrain_data", arm), processor.encode, ledger)
    if pre is not None:
        for i, phase in enumerate(d.pretrain):
            info[f"pretrain_{i}"] = train_phase(
                ctx, model, processor, pre, train=phase, folder=folder / f"p{i}", seed=seed + 10 + i
            )
    elif arm == "synthetic":
        log.warning("no synthetic data to pretrain on: the synthetic arm is the baseline")
    fin = arm_dataset(ctx, inputs, arm_entries(ctx, "finetune_data", arm), processor.encode, ledger)
    if int(d.finetune.steps) > 0:
        if fin is None:
            raise ValueError(
                "downstream.finetune_data: no training examples (the entries are empty for "
                f"the {arm} arm; a world split of this world may be empty)"
            )
        info["finetune"] = train_phase(
            ctx, model, processor, fin, train=d.finetune, folder=folder, seed=seed + 20
        )
    ledger.write(folder, "skipped-data.jsonl")
    info["data_skipped"] = dict(ledger.counts)
    return info


def train_and_evaluate(ctx: RunContext, inputs: Inputs, folder: Path, arm: str) -> dict:
    """One arm: its model, its training phases, then every benchmark."""
    model, processor = downstream_model(ctx, inputs, int(ctx.cfg.downstream.seed))
    info = train_arm(ctx, inputs, folder, arm, (model, processor))
    scores = {}
    for entry in arm_entries(ctx, "benchmarks", arm):
        label = entry.get("name") or entry["benchmark"]
        if entry["benchmark"] == "world":
            result = evaluate_world(ctx, model, processor, inputs["world"].path, folder, arm=arm)
            info |= {k: result[k] for k in ("accuracy", "per_category", "questions")}
        else:
            result, ledger = evaluate_benchmark(ctx, model, processor, entry, folder, arm=arm)
            ledger.stage = f"downstream_{arm}"
            for row in ledger.rows:
                row["stage"], row["benchmark"] = ledger.stage, label
            ledger.write(folder, f"skipped-benchmark-{label}.jsonl")
        scores[label] = {k: result.get(k) for k in ("score", "metric", "questions", "per_category")}
    info["benchmarks"] = scores
    return info


class DownstreamBaseline(Stage):
    name, version, phase = "downstream_baseline", 1, "downstream"
    reads = {"world": "world", "collect": "collect", "vision": "pretrain_vision"}

    def key(self, ctx: RunContext) -> dict | None:
        return arm_key(ctx, "baseline") if ctx.cfg.downstream.baseline else None

    def check(self, ctx: RunContext) -> None:
        check_checkpoint(ctx)

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        return train_and_evaluate(ctx, inputs, folder, "baseline")


class DownstreamSynthetic(Stage):
    name, version, phase = "downstream_synthetic", 1, "downstream"
    reads = {
        "world": "world",
        "collect": "collect",
        "vision": "pretrain_vision",
        "export": "export",
    }

    def key(self, ctx: RunContext) -> dict:
        return arm_key(ctx, "synthetic")

    def check(self, ctx: RunContext) -> None:
        check_checkpoint(ctx)

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        return train_and_evaluate(ctx, inputs, folder, "synthetic")

    def summarize(self, ctx: RunContext, results) -> dict:
        syn = results["downstream_synthetic"].info
        base = results["downstream_baseline"].info if "downstream_baseline" in results else {}
        return {"downstream": downstream_summary(syn, base)}


def arm_scores(info: dict) -> dict:
    """``{benchmark: {score, per_category, ...}}`` of an arm (a manifest from before the
    benchmark lists has only the world's benchmark, at the top level)."""
    if "benchmarks" in info:
        return info["benchmarks"]
    if "accuracy" in info:
        return {"world": {"score": info["accuracy"], "per_category": info.get("per_category")}}
    return {}


def downstream_summary(syn: dict, base: dict) -> dict:
    """``summary.json``'s ``downstream`` block: per benchmark the two arms' scores and the
    gain (None without a baseline, or without synthetic data: then the arm is the baseline,
    not a measured gain of zero); the top-level keys are the world's benchmark's (else the
    first benchmark's)."""
    has_data = bool(syn.get("synthetic_records", 1))
    mine, theirs = arm_scores(syn), arm_scores(base)
    table = {}
    for label, r in mine.items():
        s = r.get("score")
        b = (theirs.get(label) or {}).get("score")
        gain = round(s - b, 4) if has_data and s is not None and b is not None else None
        table[label] = {"baseline": b, "synthetic": s, "gain": gain}
    first = "world" if "world" in table else next(iter(table), None)
    top = table.get(first, {})
    return {
        "accuracy": top.get("synthetic"),
        "baseline_accuracy": top.get("baseline"),
        "gain": top.get("gain"),
        "synthetic_records": syn.get("synthetic_records"),
        "per_category": (mine.get(first) or {}).get("per_category"),
        "baseline_per_category": (theirs.get(first) or {}).get("per_category"),
        "benchmarks": table,
    }
