"""The built-in world: determinism, disjoint splits, boxes and rendering."""

from __future__ import annotations

import pytest

from genixer.sources.shapes import ShapesWorld
from genixer.world import load_image, read_index, safe_join
from genixer.world.scene import RGB


def test_splits_are_seeded_disjoint_and_indexed(tmp_path):
    sizes = {"collection": 30, "pool": 20, "judge": 10, "downstream": 5, "benchmark": 10}
    a = ShapesWorld(seed=3, splits=sizes).materialize(tmp_path / "a")
    b = ShapesWorld(seed=3, splits=sizes).materialize(tmp_path / "b")
    assert {k: [i.id for i in v] for k, v in a.items()} == {
        k: [i.id for i in v] for k, v in b.items()
    }
    ids = [i.id for v in a.values() for i in v]
    assert len(ids) == len(set(ids)) == sum(sizes.values())
    assert {k: len(v) for k, v in a.items()} == sizes
    again = read_index(tmp_path / "a")
    assert [i.scene for i in again["pool"]] == [i.scene for i in a["pool"]]
    other = ShapesWorld(seed=4, splits=sizes).materialize(tmp_path / "c")
    assert {i.id for i in other["pool"]} != {i.id for i in a["pool"]}


def test_objects_are_drawn_inside_their_boxes(tmp_path):
    items = ShapesWorld(seed=0, splits={"pool": 20}).materialize(tmp_path)["pool"]
    for it in items:
        img = load_image(tmp_path, it)
        for o in it.scene.objects:
            x0, y0, x1, y1 = o.box
            cx, cy = (x0 + x1) // 2, (y0 + y1 - 1) // 2 + 1
            px = img.getpixel((cx, cy))
            assert max(abs(p - q) for p, q in zip(px, RGB[o.color], strict=True)) <= 20
            assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48


def test_paths_cannot_escape_the_root(tmp_path):
    with pytest.raises(ValueError, match="escapes"):
        safe_join(tmp_path, "../etc/passwd")
    with pytest.raises(ValueError, match="escapes"):
        safe_join(tmp_path, "/etc/passwd")
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(ValueError, match="escapes"):
        safe_join(tmp_path, "link/passwd")


def test_wrong_answer_is_never_the_truth_and_prefers_confusable_ones():
    import random

    from genixer.world.questions import wrong_answer
    from genixer.world.scene import Obj, Scene

    scene = Scene(
        48,
        48,
        3,
        [Obj("circle", "red", 0, (1, 1, 14, 14)), Obj("square", "blue", 4, (17, 17, 30, 30))],
    )
    rng = random.Random(0)
    counts = [
        wrong_answer(scene, "How many circles are there?", "1", rng, hard=1.0) for _ in range(50)
    ]
    assert set(counts) <= {"0", "2"} and "1" not in counts
    where = {
        wrong_answer(scene, "Where is the red circle?", "top left", rng, hard=1.0)
        for _ in range(50)
    }
    assert where == {"center"}  # the only other object's position
    # Unanswerable questions (truth None) still get an answer from the question's space.
    uniform = {
        wrong_answer(scene, "What color is the triangle?", None, rng, hard=0.0) for _ in range(200)
    }
    assert uniform == {"red", "green", "blue", "yellow"}


def test_patch_labels_factor_into_shape_and_colour():
    """The vision pretraining's targets: each patch's object, and its shape and colour on
    their own (0 where the patch holds nothing)."""
    from genixer.models.vision_pretrain import factor_labels, patch_labels
    from genixer.world.scene import COLORS, SHAPES, Obj, Scene

    scene = Scene(
        48,
        48,
        3,
        [Obj("circle", "red", 0, (1, 1, 14, 14)), Obj("triangle", "yellow", 5, (33, 17, 46, 30))],
    )
    labels = patch_labels(scene, 48, 16)
    factors = factor_labels(labels)
    by_cell = {o.cell: o for o in scene.objects}
    for cell in range(9):
        o = by_cell.get(cell)
        shape, color = int(factors["shape"][cell]), int(factors["color"][cell])
        if o is None:
            assert labels[cell] == 0 and shape == 0 and color == 0
        else:
            assert SHAPES[shape - 1] == o.shape and COLORS[color - 1] == o.color
