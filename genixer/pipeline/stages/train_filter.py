"""The filter's training stage: the configured filter trains (the tiny Fuyu judge, the tiny
CLIP) or copies its checkpoint. Its cache name and version are the filter's own
(``train_judge``, ``train_clip``); a filter with nothing to train has no such stage."""

from __future__ import annotations

from pathlib import Path

from genixer.filters.base import Filter, FilterEnv
from genixer.pipeline.artifacts import project_tokenizer, world_splits
from genixer.pipeline.stage import Inputs, RunContext, Stage


def filter_env(ctx: RunContext, inputs: Inputs) -> FilterEnv:
    """What the filter sees of the run: the world, and the project tokenizer when the
    collection is among the stage's inputs."""
    world = inputs["world"].path
    tokenizer = project_tokenizer(inputs["collect"].path) if "collect" in inputs else None
    return FilterEnv(
        world=world,
        splits=world_splits(world),
        tokenizer=tokenizer,
        trainer=ctx.cfg.trainer,
        checkpoint_every=ctx.checkpoint_every,
        seed=ctx.seed,
    )


class TrainFilter(Stage):
    phase = "select"

    def __init__(self, filter_: Filter) -> None:
        self.name = filter_.train_stage or "train_filter"
        self.version = filter_.train_version
        self.reads = dict(filter_.train_reads)

    def key(self, ctx: RunContext) -> dict | None:
        return ctx.filter.train_key(ctx.seed, ctx.trainer_key())

    def check(self, ctx: RunContext) -> None:
        ctx.filter.check()

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        return ctx.filter.train(filter_env(ctx, inputs), folder)
