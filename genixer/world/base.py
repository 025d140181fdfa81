"""What every image source hands the pipeline: images with stable ids, in named splits.

``safe_join`` and the robust RGB loading live in :mod:`genixer.world.imageio`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from genixer.world.imageio import DEFAULT_MAX_PIXELS, open_rgb, safe_join
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

    Raises :class:`~genixer.world.imageio.ImageError` (a ValueError) with a ``reason`` when
    the file escapes ``root``, is missing, empty, corrupt, truncated or too large."""
    rel = item.path if isinstance(item, WorldImage) else item
    return open_rgb(safe_join(root, rel), max_pixels)


def store_file(src: Path, dst: Path, link: str) -> str:
    """Put ``src`` at ``dst`` atomically: a hard link when ``link == "hardlink"`` and the file
    system allows it, else a copy. Returns ``"linked"`` or ``"copied"``."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    how = "copied"
    if link == "hardlink":
        try:
            os.link(src, tmp)
            how = "linked"
        except OSError:
            shutil.copyfile(src, tmp)
    else:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return how
