"""The built-in procedural world (``world=shapes``): seeded scenes in disjoint splits."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

from genixer.world.base import SPLITS, WorldImage, write_index
from genixer.world.scene import render, sample_scene


class ShapesWorld:
    """Coloured shapes on a 3x3 grid, with their full scene description.

    Splits are drawn from independent seeded streams and made disjoint by image content:
    an image that already appeared in an earlier split is drawn again.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        image_size: int = 48,
        grid: int = 3,
        min_objects: int = 1,
        max_objects: int = 4,
        splits: dict[str, int] | None = None,
    ) -> None:
        self.seed = seed
        self.image_size = image_size
        self.grid = grid
        self.min_objects = min_objects
        self.max_objects = max_objects
        self.split_sizes = dict(splits or {})
        unknown = set(self.split_sizes) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; splits are {SPLITS}")

    def materialize(self, root: str | Path) -> dict[str, list[WorldImage]]:
        """Render every split as PNG files under ``root`` plus a ``scenes.jsonl`` index."""
        root = Path(root)
        seen: set[str] = set()
        out: dict[str, list[WorldImage]] = {}
        for split in SPLITS:
            n = self.split_sizes.get(split, 0)
            rng = random.Random(f"{self.seed}:{split}")
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            items: list[WorldImage] = []
            while len(items) < n:
                scene = sample_scene(
                    rng, self.image_size, self.grid, self.min_objects, self.max_objects
                )
                buf = io.BytesIO()
                render(scene).save(buf, format="PNG")
                data = buf.getvalue()
                digest = hashlib.sha1(data).hexdigest()[:16]
                if digest in seen:
                    continue
                seen.add(digest)
                rel = f"images/{split}/{digest}.png"
                (root / rel).write_bytes(data)
                items.append(WorldImage(digest, split, rel, scene))
            out[split] = items
        write_index(root, out)
        return out
