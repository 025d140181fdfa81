"""The world stage: materialize the configured image source into the cache."""

from __future__ import annotations

from pathlib import Path

from genixer.utils import build
from genixer.world.base import WorldImage
from genixer.world.shapes import read_index


def materialize(world_cfg, folder: Path) -> dict:
    world = build(world_cfg)
    splits = world.materialize(folder)
    return {"images": {k: len(v) for k, v in splits.items()}}


def load_splits(folder: Path) -> dict[str, list[WorldImage]]:
    return read_index(folder)
