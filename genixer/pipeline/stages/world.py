"""The world stage: the configured image source (``world=shapes|folder|collection``)
materialized into the cache: images in named splits, with their scenes where known."""

from __future__ import annotations

from pathlib import Path

from genixer.core.build import build, to_plain
from genixer.pipeline.stage import Inputs, RunContext, Stage


def world_key(world_cfg) -> dict:
    """Its config, plus, for a world read from disk (``world=folder``), a fingerprint of the
    files, so a changed folder is read again."""
    key = to_plain(world_cfg)
    world = build(world_cfg)
    if hasattr(world, "fingerprint"):
        key = dict(key, content=world.fingerprint())
    return key


class World(Stage):
    name, version, phase = "world", 1, "train_generator"

    def key(self, ctx: RunContext) -> dict:
        return world_key(ctx.cfg.world)

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        world = build(ctx.cfg.world)
        splits = world.materialize(folder)
        # a world that checks its inputs reports what it took and what it skipped
        return {"images": {k: len(v) for k, v in splits.items()}} | getattr(world, "report", {})

    def summarize(self, ctx: RunContext, results) -> dict:
        return {"world_root": str(results["world"].path)}
