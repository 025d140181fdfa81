"""Boxes and points of the built-in world's objects, and the boxes written in a text.

Everything here is about the scene (which object a point hits, which object a box outlines,
whether a text's inline boxes outline what their phrases name); the task modules
(``genixer.tasks.rec`` ...) own the sample text format. Boxes are normalized to the ORIGINAL
image frame (the built-in world's images are square, so the padded frame coincides) and
written only through :mod:`genixer.core.boxes`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from genixer.core.boxes import BoxParseError, contains, iou, parse_bracket, quantize
from genixer.world.referring import grounded_phrases, phrase_objects
from genixer.world.scene import Obj, Scene

IOU_THRESHOLD = 0.5
# Regex of one bracket written in a question or answer, numbers not checked yet.
BRACKET_PATTERN = r"\[[^\[\]]*\]"


def object_box(scene: Scene, obj: Obj) -> tuple[float, float, float, float]:
    """The object's normalized box as it is written in text (3 decimals)."""
    return quantize(scene.norm_box(obj))  # type: ignore[return-value]


def object_center(scene: Scene, obj: Obj) -> tuple[float, float]:
    x0, y0, x1, y1 = scene.norm_box(obj)
    return quantize(((x0 + x1) / 2, (y0 + y1) / 2))  # type: ignore[return-value]


def object_at_point(scene: Scene, point: Sequence[float]) -> Obj | None:
    """The one object whose box contains the point; None for none or several."""
    hits = [o for o in scene.objects if contains(scene.norm_box(o), point)]
    return hits[0] if len(hits) == 1 else None


def object_for_box(scene: Scene, box: Sequence[float]) -> Obj | None:
    """The object a box outlines: the best IoU, if it reaches :data:`IOU_THRESHOLD`."""
    scored = [(iou(box, scene.norm_box(o)), i) for i, o in enumerate(scene.objects)]
    if not scored:
        return None
    best, i = max(scored)
    return scene.objects[i] if best >= IOU_THRESHOLD else None


def box_matches(scene: Scene, box: Sequence[float], obj: Obj) -> bool:
    return iou(box, scene.norm_box(obj)) >= IOU_THRESHOLD


def boxes_match(scene: Scene, boxes: Sequence[Sequence[float]], objs: Sequence[Obj]) -> bool:
    """A one-to-one matching of boxes to objects, each pair with IoU >= the threshold
    (greedy by IoU; objects of the world never overlap, so greedy is exact)."""
    if len(boxes) != len(objs):
        return False
    pairs = sorted(
        (
            (iou(b, scene.norm_box(o)), i, j)
            for i, b in enumerate(boxes)
            for j, o in enumerate(objs)
        ),
        reverse=True,
    )
    used_b, used_o = set(), set()
    for score, i, j in pairs:
        if score < IOU_THRESHOLD:
            break
        if i not in used_b and j not in used_o:
            used_b.add(i)
            used_o.add(j)
    return len(used_b) == len(boxes)


def phantom_box(scene: Scene, cell: int, rng: random.Random) -> tuple[float, ...]:
    """A box where an object of ``cell`` could be (a distractor candidate), as written;
    sized like the world's objects (75-90% of the cell)."""
    cw, ch = scene.width // scene.grid, scene.height // scene.grid
    frac = rng.uniform(0.75, 0.9)
    w, h = round(cw * frac), round(ch * frac)
    r, c = divmod(cell, scene.grid)
    x0 = c * cw + rng.randint(0, cw - w)
    y0 = r * ch + rng.randint(0, ch - h)
    return quantize(
        (x0 / scene.width, y0 / scene.height, (x0 + w) / scene.width, (y0 + h) / scene.height)
    )


def inline_boxes_ok(scene: Scene, text: str) -> bool:
    """Every bracket of a text follows a phrase of ours and outlines what the phrase names."""
    try:
        grounded = grounded_phrases(text)
    except BoxParseError:
        return False
    for phrase, boxes in grounded:
        objs = phrase_objects(scene, phrase) if phrase else None
        if objs is None or any(len(b) != 4 for b in boxes) or not boxes_match(scene, boxes, objs):
            return False
    return True


def read_single_group(text: str, numbers: int) -> tuple[float, ...] | None:
    """The one group of ``numbers`` values (2: a point, 4: a box) a bracket holds; None when
    the bracket is malformed or holds anything else, so a question about it has no truth."""
    try:
        groups = parse_bracket(text)
    except BoxParseError:
        return None
    return groups[0] if len(groups) == 1 and len(groups[0]) == numbers else None
