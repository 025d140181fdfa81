"""What every image source hands the pipeline: images with stable ids, in named splits.

``safe_join`` and the robust RGB loading live in :mod:`genixer.core.images`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from genixer.core.images import DEFAULT_MAX_PIXELS, open_rgb, safe_join
from genixer.world.scene import Scene

# The roles the paper's data plays (DESIGN.md): generator training collection, unlabeled
# generation pool, third-party judge/CLIP split, small downstream set, held-out benchmark.
SPLITS = ("collection", "pool", "judge", "downstream", "benchmark")


@dataclass(frozen=True)
class WorldImage:
    id: str
    split: str
    path: str  # relative to the world's root; never absolute, never escaping it
    scene: Scene | None = None  # ground truth, when the world has it


def load_image(
    root: str | Path, item: WorldImage | str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """An image as RGB, from a WorldImage or a path relative to ``root``.

    Raises :class:`~genixer.core.images.ImageError` (a ValueError) with a ``reason`` when
    the file escapes ``root``, is missing, empty, corrupt, truncated or too large."""
    rel = item.path if isinstance(item, WorldImage) else item
    return open_rgb(safe_join(root, rel), max_pixels)


def write_index(root: Path, splits: dict[str, list[WorldImage]]) -> None:
    tmp = root / "scenes.jsonl.tmp"
    with open(tmp, "w") as f:
        for split, items in splits.items():
            for it in items:
                row = {"id": it.id, "split": split, "path": it.path}
                if it.scene is not None:
                    row["scene"] = it.scene.to_dict()
                f.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, root / "scenes.jsonl")


def read_index(root: str | Path) -> dict[str, list[WorldImage]]:
    out: dict[str, list[WorldImage]] = {s: [] for s in SPLITS}
    with open(Path(root) / "scenes.jsonl") as f:
        for line in f:
            row = json.loads(line)
            scene = Scene.from_dict(row["scene"]) if "scene" in row else None
            out.setdefault(row["split"], []).append(
                WorldImage(row["id"], row["split"], row["path"], scene)
            )
    return out
