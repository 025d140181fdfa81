"""The downstream stages: the two arms of the paper's last experiment. A tiny LLaVA is
trained on the small labeled set alone (``downstream_baseline``), or first on the exported
synthetic data (projector-only, then full: LLaVA-1.5's two stages) and then on the small set
(``downstream_synthetic``); both answer the held-out benchmark, and the summary reports the
gain."""

from __future__ import annotations

import logging
from pathlib import Path

from genixer.core.record import write_jsonl
from genixer.evaluation.world_benchmark import ANSWERS, QUESTION_MAKERS, QUESTIONS, evaluate_vqa
from genixer.models.family import family
from genixer.models.llava.model import processor_for
from genixer.pipeline.artifacts import (
    fit_vlm,
    images_by_id,
    new_vlm,
    project_tokenizer,
    vlm_examples,
    world_splits,
)
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.collect import plain_rows
from genixer.pipeline.stages.export import LLAVA_JSON, read_llava

log = logging.getLogger(__name__)


def arm_key(ctx: RunContext) -> dict:
    d = ctx.cfg.downstream
    key = {
        "model": d.model,
        "finetune": d.finetune,
        "seed": d.seed,
        "eval": d.eval,
        "trainer": ctx.trainer_key(),
        "small_set_tasks": d.small_set_tasks,
    }
    if d.get("checkpoint"):  # absent for the tiny models: their keys stay as they were
        key |= {"family": family(d).name, "checkpoint": d.checkpoint}
    return key


def downstream_model(ctx: RunContext, inputs: Inputs, seed: int):
    """A fresh downstream model and its processor: the family's checkpoint
    (``downstream.checkpoint``), or a tiny LLaVA with the pretrained tower."""
    d = ctx.cfg.downstream
    if d.get("checkpoint"):
        kind = family(d)
        model = kind.load(d.checkpoint)
        project = project_tokenizer(inputs["collect"].path)
        return model, kind.processor(model, d.checkpoint, project)
    tokenizer = project_tokenizer(inputs["collect"].path)
    model = new_vlm(d.model, tokenizer, seed, "downstream", inputs.get("vision"))
    return model, processor_for(model, tokenizer)


def pretrain_on_export(ctx: RunContext, model, processor, inputs: Inputs, folder: Path) -> dict:
    """The synthetic arm's first phases (``downstream.pretrain``) on the exported data."""
    d, info = ctx.cfg.downstream, {}
    world = inputs["world"].path
    by_id = images_by_id(world)
    entries = read_llava(inputs["export"].path / LLAVA_JSON)
    synthetic = [(by_id[Path(img).stem], turns) for _, img, turns in entries]
    info["synthetic_records"] = len(synthetic)
    if not synthetic:
        log.warning("the export is empty: the synthetic arm is the baseline; no gain reported")
        return info
    for i, phase in enumerate(d.pretrain):
        info[f"pretrain_{i}"] = fit_vlm(
            ctx,
            model,
            processor,
            synthetic,
            train=phase,
            world=world,
            folder=folder / f"p{i}",
            seed=int(d.seed) + 10 + i,
        )
    return info


def train_and_evaluate(ctx: RunContext, inputs: Inputs, folder: Path, arm: str) -> dict:
    """One arm: a fresh model (the pretrained tower), the synthetic phases for the synthetic
    arm, the small labeled set, then the benchmark (LLaVA's question and answer files)."""
    d, seed = ctx.cfg.downstream, int(ctx.cfg.downstream.seed)
    world = inputs["world"].path
    model, processor = downstream_model(ctx, inputs, seed)
    info = pretrain_on_export(ctx, model, processor, inputs, folder) if arm == "synthetic" else {}
    tasks = list(d.small_set_tasks) if d.small_set_tasks else None
    small = plain_rows(world_splits(world)["downstream"], seed, "downstream", tasks)
    examples = vlm_examples(small, images_by_id(world))
    info["finetune"] = fit_vlm(
        ctx,
        model,
        processor,
        examples,
        train=d.finetune,
        world=world,
        folder=folder,
        seed=seed + 20,
    )
    metric = d.eval.metric
    questions = QUESTION_MAKERS[metric](
        world_splits(world)["benchmark"], d.eval.per_image, ctx.seed
    )
    write_jsonl(folder / QUESTIONS, questions)
    return info | evaluate_vqa(
        model,
        processor,
        questions,
        root=world,
        batch_size=d.eval.batch_size,
        max_new_tokens=d.eval.max_new_tokens,
        answers_path=folder / ANSWERS,
        model_id=arm,
        metric=metric,
    )


class DownstreamBaseline(Stage):
    name, version, phase = "downstream_baseline", 1, "downstream"
    reads = {"world": "world", "collect": "collect", "vision": "pretrain_vision"}

    def check(self, ctx: RunContext) -> None:
        d = ctx.cfg.downstream
        if d.get("checkpoint"):
            family(d).check(d.checkpoint)

    def key(self, ctx: RunContext) -> dict:
        return arm_key(ctx)

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
        return arm_key(ctx) | {"pretrain": ctx.cfg.downstream.pretrain}

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        return train_and_evaluate(ctx, inputs, folder, "synthetic")

    def summarize(self, ctx: RunContext, results) -> dict:
        syn, base = results["downstream_synthetic"].info, results["downstream_baseline"].info
        return {
            "downstream": {
                "accuracy": syn["accuracy"],
                "baseline_accuracy": base["accuracy"],
                # No synthetic data (an empty selection): the arm is the baseline, not a
                # measured gain of zero.
                "gain": round(syn["accuracy"] - base["accuracy"], 4)
                if syn.get("synthetic_records", 1)
                else None,
                "synthetic_records": syn.get("synthetic_records"),
                "per_category": syn["per_category"],
                "baseline_per_category": base["per_category"],
            }
        }
