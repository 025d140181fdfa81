"""The base model stage: Genixer_L / Genixer_S first trained as a plain VQA model on the
collection's conversations (the role of LLaVA-1.5's / Shikra's own training), or copied from
``generator.checkpoint`` with its own tokenizer."""

from __future__ import annotations

from pathlib import Path

from genixer.models.family import family
from genixer.models.llava.model import processor_for, save_vlm
from genixer.pipeline.artifacts import (
    fit_vlm,
    images_by_id,
    new_vlm,
    project_tokenizer,
    vlm_examples,
)
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.collect import read_plain


class TrainBase(Stage):
    name, version, phase = "train_base", 1, "train_generator"
    reads = {"collect": "collect", "vision": "pretrain_vision"}
    uses = {"world": "world"}

    def key(self, ctx: RunContext) -> dict:
        g = ctx.cfg.generator
        return {
            "model": g.model,
            "train": g.base_train,
            "trainer": ctx.trainer_key(),
            "seed": ctx.seed,
            "checkpoint": g.checkpoint,
        }

    def check(self, ctx: RunContext) -> None:
        g = ctx.cfg.generator
        if g.checkpoint:
            family(g).check(g.checkpoint)

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        g = ctx.cfg.generator
        if g.checkpoint:
            return family(g).copy(g.checkpoint, folder)
        tokenizer = project_tokenizer(inputs["collect"].path)
        model = new_vlm(g.model, tokenizer, ctx.seed, "base", inputs.get("vision"))
        world = inputs["world"].path
        examples = vlm_examples(read_plain(inputs["collect"].path), images_by_id(world))
        info = fit_vlm(
            ctx,
            model,
            processor_for(model, tokenizer),
            examples,
            train=g.base_train,
            world=world,
            folder=folder,
            seed=ctx.seed,
        )
        save_vlm(model, folder / "model")
        return info
