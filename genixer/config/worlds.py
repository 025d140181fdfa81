"""The schema of the world group, one dataclass per image source (picked by ``_target_``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from genixer.config.check import at_least, check_targeted, fail, optional
from genixer.config.models import known_tasks
from genixer.world.base import SPLITS


# ------------------------------------------------------------------ worlds
@dataclass(kw_only=True)
class ShapesWorldConfig:
    _target_: str
    seed: int
    image_size: int
    grid: int
    min_objects: int
    max_objects: int
    splits: dict[str, int]

    def check(self, path: str) -> None:
        bad = sorted(set(self.splits) - set(SPLITS))
        if bad:
            fail(f"{path}.splits", f"unknown split(s) {bad}; splits: {list(SPLITS)}")
        for name, n in self.splits.items():
            at_least(f"{path}.splits.{name}", n, 0)
        at_least(f"{path}.min_objects", self.min_objects, 0)
        if self.max_objects < self.min_objects or self.max_objects > self.grid**2:
            fail(
                f"{path}.max_objects", f"must lie in [min_objects, grid^2], got {self.max_objects}"
            )


@dataclass(kw_only=True)
class CollectionWorldConfig:
    _target_: str
    root: str
    seed: int
    tasks: list[str]
    size: int | None
    link: Literal["hardlink", "copy"]
    image_size: int
    box_tolerance_px: float
    datasets: dict[str, dict[str, Any]]  # checked by each converter when the world is built
    splits: dict[str, int] = optional()

    def check(self, path: str) -> None:
        known_tasks(f"{path}.tasks", self.tasks)
        if not Path(self.root).is_dir():
            fail(f"{path}.root", f"no data folder at {self.root}")


@dataclass(kw_only=True)
class FolderWorldConfig:
    _target_: str
    images: str
    image_root: str | None
    extensions: list[str]
    max_pixels: int | None
    link: Literal["hardlink", "copy"]
    workers: int
    image_size: int
    base: dict[str, Any]  # the labeled splits: another world (shapes or collection)

    def check(self, path: str) -> None:
        if not Path(self.images).exists():
            fail(f"{path}.images", f"no folder or image list at {self.images}")
        at_least(f"{path}.workers", self.workers, 0)
        self.base = check_targeted(self.base, WORLDS, f"{path}.base")


WORLDS = {
    "genixer.sources.shapes.ShapesWorld": ShapesWorldConfig,
    "genixer.sources.collection.CollectionWorld": CollectionWorldConfig,
    "genixer.sources.folder.FolderWorld": FolderWorldConfig,
}
