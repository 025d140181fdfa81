"""What every image source hands the pipeline: images with stable ids, in named splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

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


def safe_join(root: str | Path, rel: str) -> Path:
    """``root/rel``, refusing paths that escape root (``..``, absolute, symlinks out)."""
    root_p = Path(root).resolve()
    p = (root_p / rel).resolve()
    if not p.is_relative_to(root_p):
        raise ValueError(f"image path escapes its root: {rel!r}")
    return p


def load_image(root: str | Path, item: WorldImage | str) -> Image.Image:
    """An image as RGB, from a WorldImage or a path relative to ``root``."""
    rel = item.path if isinstance(item, WorldImage) else item
    with Image.open(safe_join(root, rel)) as im:
        return im.convert("RGB")
