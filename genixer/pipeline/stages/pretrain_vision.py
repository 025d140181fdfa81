"""The vision pretraining stage (the role of CLIP's pretraining on the built-in world): the
tiny tower learns what lies under each patch of the collection's images. Skipped when the
generator comes from a checkpoint (it brings its own tower) or ``vision_pretrain`` is null."""

from __future__ import annotations

from pathlib import Path

from genixer.models.llava.model import processor_for
from genixer.models.vision_pretrain import TowerFeatures, pretrain_patches, save_tower
from genixer.pipeline.artifacts import new_vlm, project_tokenizer, world_splits
from genixer.pipeline.stage import Inputs, RunContext, Stage


class PretrainVision(Stage):
    name, version, phase = "pretrain_vision", 2, "train_generator"
    reads = {"world": "world", "collect": "collect"}

    def key(self, ctx: RunContext) -> dict | None:
        g = ctx.cfg.generator
        if not g.vision_pretrain or g.checkpoint:
            return None
        return {
            "spec": g.model.spec,
            "train": g.vision_pretrain,
            "seed": ctx.seed,
            "trainer": ctx.trainer_key(),
        }

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        g = ctx.cfg.generator
        tokenizer = project_tokenizer(inputs["collect"].path)
        model = new_vlm(g.model, tokenizer, ctx.seed, "vision")
        tower = model.model.vision_tower
        world = inputs["world"].path
        info = pretrain_patches(
            TowerFeatures(tower, g.model.spec.vision_feature_layer),
            world_splits(world)["collection"],
            world=world,
            to_pixels=processor_for(model, tokenizer).pixels,
            spec=g.model.spec,
            train=g.vision_pretrain,
            trainer_cfg=ctx.cfg.trainer,
            log_dir=folder / "logs",
            seed=ctx.seed,
        )
        save_tower(tower, folder)
        return info
