"""The world stage: materialize the configured image source into the cache."""

from __future__ import annotations

from pathlib import Path

from genixer.utils import build, to_plain
from genixer.world.base import WorldImage
from genixer.world.shapes import read_index


def world_key(world_cfg) -> dict:
    """The world stage's cache key: its config, plus, for a world read from disk
    (``world=folder``), a fingerprint of the files, so a changed folder is read again."""
    key = to_plain(world_cfg)
    world = build(world_cfg)
    if hasattr(world, "fingerprint"):
        key = dict(key, content=world.fingerprint())
    return key


def materialize(world_cfg, folder: Path) -> dict:
    world = build(world_cfg)
    splits = world.materialize(folder)
    # a world that checks its inputs reports what it took and what it skipped
    return {"images": {k: len(v) for k, v in splits.items()}} | getattr(world, "report", {})


def load_splits(folder: Path) -> dict[str, list[WorldImage]]:
    return read_index(folder)
