"""Scenes of the built-in procedural world: objects on a grid, rendered with Pillow.

A scene is the full ground truth of one image: every object's shape, colour, grid cell and
pixel box. Everything the oracle knows comes from here.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
RGB = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (45, 80, 220),
    "yellow": (230, 195, 35),
}
BACKGROUND = (232, 232, 232)
# Grid cells of a 3x3 world, row-major; the phrases answer "where" questions.
POSITIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    cell: int  # row-major index into the grid
    box: tuple[int, int, int, int]  # pixels, x1/y1 exclusive

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]


@dataclass
class Scene:
    width: int
    height: int
    grid: int
    objects: list[Obj] = field(default_factory=list)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        objs = [Obj(o["shape"], o["color"], o["cell"], tuple(o["box"])) for o in d["objects"]]
        return cls(d["width"], d["height"], d["grid"], objs, d.get("seed", 0))

    # Queries the question bank and the oracle use.
    def count(self, shape: str | None = None, color: str | None = None) -> int:
        return sum(
            1
            for o in self.objects
            if (shape is None or o.shape == shape) and (color is None or o.color == color)
        )

    def find(self, shape: str | None = None, color: str | None = None) -> list[Obj]:
        return [
            o
            for o in self.objects
            if (shape is None or o.shape == shape) and (color is None or o.color == color)
        ]

    def at(self, cell: int) -> Obj | None:
        return next((o for o in self.objects if o.cell == cell), None)

    def norm_box(self, obj: Obj) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = obj.box
        return (x0 / self.width, y0 / self.height, x1 / self.width, y1 / self.height)


def sample_scene(
    rng: random.Random, image_size: int, grid: int, min_objects: int, max_objects: int
) -> Scene:
    """Objects in distinct cells, each 75-90% of its cell, jittered inside it."""
    if grid != 3:
        raise ValueError("the built-in world's position phrases assume a 3x3 grid")
    cell_px = image_size // grid
    n = rng.randint(min_objects, max_objects)
    cells = rng.sample(range(grid * grid), n)
    objects = []
    for cell in sorted(cells):
        size = rng.randint(round(cell_px * 0.75), round(cell_px * 0.9))
        r, c = divmod(cell, grid)
        x0 = c * cell_px + rng.randint(0, cell_px - size)
        y0 = r * cell_px + rng.randint(0, cell_px - size)
        objects.append(
            Obj(rng.choice(SHAPES), rng.choice(COLORS), cell, (x0, y0, x0 + size, y0 + size))
        )
    return Scene(image_size, image_size, grid, objects, seed=rng.randint(0, 2**31 - 1))


def render(scene: Scene) -> Image.Image:
    """Deterministic rendering: colours jitter by the scene's own seed."""
    rng = random.Random(scene.seed)
    img = Image.new("RGB", (scene.width, scene.height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        base = RGB[o.color]
        fill = tuple(min(255, max(0, v + rng.randint(-18, 18))) for v in base)
        x0, y0, x1, y1 = o.box
        xy = (x0, y0, x1 - 1, y1 - 1)
        if o.shape == "circle":
            draw.ellipse(xy, fill=fill)
        elif o.shape == "square":
            draw.rectangle(xy, fill=fill)
        else:
            draw.polygon([((x0 + x1 - 1) / 2, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)], fill=fill)
    return img
