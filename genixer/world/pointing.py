"""PointQA on the built-in world: a point or a box in the question, answered in words;
or candidate boxes in the question, answered with the one that holds the named object
(Visual7W-like pointing)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from genixer.core.boxes import BoxParseError, find_brackets, format_box, format_point, parse_bracket
from genixer.world.object_boxes import (
    BRACKET_PATTERN,
    box_matches,
    object_at_point,
    object_box,
    object_center,
    object_for_box,
    phantom_box,
    read_single_group,
)
from genixer.world.referring import pick_ref, resolve
from genixer.world.scene import Obj, Scene


@dataclass(frozen=True)
class PointKind:
    """A question about the object at a point (``numbers`` 2) or in a box (4)."""

    name: str
    template: str  # with {where}
    pattern: re.Pattern  # reads (?P<where>) back
    numbers: int
    answer: Callable[[Obj], str]

    def ask(self, scene: Scene, obj: Obj) -> tuple[str, str]:
        where = (
            format_point(object_center(scene, obj))
            if self.numbers == 2
            else format_box(object_box(scene, obj))
        )
        return self.template.format(where=where), self.answer(obj)

    def truth(self, scene: Scene, question: str) -> str | None:
        m = self.pattern.fullmatch(question.strip())
        where = read_single_group(m.group("where"), self.numbers) if m else None
        if where is None:
            return None
        obj = object_at_point(scene, where) if self.numbers == 2 else object_for_box(scene, where)
        return self.answer(obj) if obj is not None else None


POINT_KINDS: tuple[PointKind, ...] = (
    PointKind(
        "point_color",
        "What color is the object at {where}?",
        re.compile(rf"What color is the object at (?P<where>{BRACKET_PATTERN})\?"),
        2,
        lambda o: o.color,
    ),
    PointKind(
        "point_shape",
        "Which shape is at {where}?",
        re.compile(rf"Which shape is at (?P<where>{BRACKET_PATTERN})\?"),
        2,
        lambda o: o.shape,
    ),
    PointKind(
        "point_name",
        "Name the object at {where}.",
        re.compile(rf"Name the object at (?P<where>{BRACKET_PATTERN})\."),
        2,
        lambda o: o.name,
    ),
    PointKind(
        "region_name",
        "Classify the object in {where}.",
        re.compile(rf"Classify the object in (?P<where>{BRACKET_PATTERN})\."),
        4,
        lambda o: o.name,
    ),
)
POINT_BY_NAME = {k.name: k for k in POINT_KINDS}

# Visual7W-like pointing: candidate boxes in the question, the answer is one of them.
CHOOSE_BOX = "choose_box"
CANDIDATES_MARK = "Candidates:"
CHOOSE_TEMPLATE = "Select the box that holds {expression}. " + CANDIDATES_MARK + " {candidates}."
CHOOSE_RE = re.compile(
    rf"Select the box that holds (?P<expression>.+?)\. {CANDIDATES_MARK}(?P<candidates>.*)",
    re.DOTALL,
)
NUM_CANDIDATES = 4
POINTQA_KINDS = (*POINT_BY_NAME, CHOOSE_BOX)


def format_candidates(boxes: Sequence[Sequence[float]]) -> str:
    return ", ".join(format_box(b) for b in boxes)


def ask_choose_box(scene: Scene, rng: random.Random) -> tuple[str, str] | None:
    """``(question, answer box text)``: the target plus distractors (other objects first,
    then plausible boxes in empty cells), shuffled."""
    picked = pick_ref(scene, rng)
    if picked is None:
        return None
    ref, obj = picked
    others = [object_box(scene, o) for o in scene.objects if o is not obj]
    rng.shuffle(others)
    empty = [c for c in range(scene.grid * scene.grid) if scene.at(c) is None]
    rng.shuffle(empty)
    target = object_box(scene, obj)
    cands = [target, *others[: NUM_CANDIDATES - 1]]
    cands += [phantom_box(scene, c, rng) for c in empty[: NUM_CANDIDATES - len(cands)]]
    rng.shuffle(cands)
    question = CHOOSE_TEMPLATE.format(expression=ref.text(), candidates=format_candidates(cands))
    return question, format_box(target)


def choose_box_truth(scene: Scene, question: str) -> tuple[float, ...] | None:
    """The one candidate that outlines the object the question names; None if the question
    is not ours, the expression is not unique, or not exactly one candidate fits."""
    m = CHOOSE_RE.fullmatch(question.strip())
    if m is None:
        return None
    obj = resolve(scene, m.group("expression"))
    if obj is None:
        return None
    try:
        cands = [
            b for _, _, inner in find_brackets(m.group("candidates")) for b in parse_bracket(inner)
        ]
    except BoxParseError:
        return None
    fits = [b for b in cands if len(b) == 4 and box_matches(scene, b, obj)]
    return fits[0] if len(fits) == 1 else None


def ask_point(scene: Scene, rng: random.Random, name: str) -> tuple[str, str] | None:
    """``(question, answer)`` of one PointQA kind about a random object."""
    if name == CHOOSE_BOX:
        return ask_choose_box(scene, rng)
    if not scene.objects:
        return None
    return POINT_BY_NAME[name].ask(scene, rng.choice(scene.objects))


def classify_point(question: str) -> str | None:
    """Which PointQA kind a question is, by its form; None when none of ours."""
    q = question.strip()
    for k in POINT_KINDS:
        if k.pattern.fullmatch(q):
            return k.name
    return CHOOSE_BOX if CHOOSE_RE.fullmatch(q) else None
