"""Grounding knowledge of the built-in world: referring expressions, points, box candidates,
box-grounded reasoning chains and referential-dialogue turns, with their truth.

Everything here is about the scene (what a phrase names, which object a point hits, what the
true answer is); the task modules (``genixer.tasks.rec`` ...) own the sample text format.
Boxes are normalized to the ORIGINAL image frame (the built-in world's images are square, so
the padded frame coincides) and written only through :mod:`genixer.core.boxes`.

Referring expressions follow one grammar, ``the [color] (shape|object) [at the position]``:
``the red circle``, ``the circle``, ``the red object``, ``the circle at the top left``,
``the object at the center``. An expression is valid in a scene iff exactly one object fits it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from genixer.core.boxes import (
    BoxParseError,
    contains,
    find_brackets,
    format_box,
    format_boxes,
    format_point,
    iou,
    parse_bracket,
    quantize,
)
from genixer.world.scene import COLORS, POSITIONS, SHAPES, Obj, Scene

IOU_THRESHOLD = 0.5
_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_POS = "|".join(sorted(POSITIONS, key=len, reverse=True))
_BRACKET = r"\[[^\[\]]*\]"

# --- referring expressions -------------------------------------------------------------

# The kinds a sample uses (each names its attributes); the grammar reads any combination.
EXPRESSION_KINDS = ("color_shape", "shape", "color", "shape_position", "position")
_EXPR = (
    rf"the (?:(?P<color>{_COLOR}) )?(?:(?P<shape>{_SHAPE})|object)"
    rf"(?: at the (?P<position>{_POS}))?"
)
EXPRESSION_RE = re.compile(_EXPR, re.IGNORECASE)
# An expression that ends right where a bracket starts (inline boxes, Shikra style).
_EXPR_AT_END = re.compile(rf"\b{_EXPR}\s*$", re.IGNORECASE)
# A counted group phrase before a bracket of several boxes: "2 red objects", "1 circle".
_GROUP_AT_END = re.compile(
    rf"\b(?P<n>\d+) (?:(?P<color>{_COLOR}) )?(?:(?P<shape>{_SHAPE})|object)s?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Ref:
    """A referring expression's attributes (None = not mentioned)."""

    color: str | None = None
    shape: str | None = None
    position: str | None = None

    @property
    def kind(self) -> str:
        parts = [n for n in ("color", "shape", "position") if getattr(self, n)]
        return "_".join(parts) or "object"

    def text(self) -> str:
        head = " ".join(p for p in ("the", self.color, self.shape or "object") if p)
        return f"{head} at the {self.position}" if self.position else head

    def fits(self, obj: Obj) -> bool:
        return (
            (self.color is None or obj.color == self.color)
            and (self.shape is None or obj.shape == self.shape)
            and (self.position is None or obj.position == self.position)
        )


def _ref(m: re.Match) -> Ref:
    def low(name: str) -> str | None:
        v = m.groupdict().get(name)
        return v.lower() if v else None

    return Ref(low("color"), low("shape"), low("position"))


def read_expression(text: str) -> Ref | None:
    """The attributes of an expression of our grammar (case-insensitive, a final period is
    allowed); None when the text is not one."""
    m = EXPRESSION_RE.fullmatch(text.strip().removesuffix(".").strip())
    return _ref(m) if m else None


def resolve_ref(scene: Scene, ref: Ref) -> Obj | None:
    fits = [o for o in scene.objects if ref.fits(o)]
    return fits[0] if len(fits) == 1 else None


def resolve(scene: Scene, expression: str) -> Obj | None:
    """The one object an expression names; None if it is not ours, fits nothing or several."""
    ref = read_expression(expression)
    return resolve_ref(scene, ref) if ref is not None else None


def ref_of(obj: Obj, kind: str) -> Ref:
    """``obj``'s expression of one of :data:`EXPRESSION_KINDS` (unique or not)."""
    attrs = kind.split("_")
    return Ref(
        obj.color if "color" in attrs else None,
        obj.shape if "shape" in attrs else None,
        obj.position if "position" in attrs else None,
    )


def unique_refs(
    scene: Scene, kinds: Sequence[str] = EXPRESSION_KINDS, obj: Obj | None = None
) -> list[tuple[Ref, Obj]]:
    """Every expression of the given kinds that names exactly one object (of ``obj`` only,
    when given), in object then kind order."""
    out = []
    for o in scene.objects if obj is None else [obj]:
        for kind in kinds:
            ref = ref_of(o, kind)
            if resolve_ref(scene, ref) == o:
                out.append((ref, o))
    return out


def expressions(scene: Scene) -> list[tuple[str, Obj]]:
    """All unique referring expressions of the scene with the object each one names."""
    return [(ref.text(), o) for ref, o in unique_refs(scene)]


def pick_ref(
    scene: Scene,
    rng: random.Random,
    kinds: Sequence[str] = EXPRESSION_KINDS,
    obj: Obj | None = None,
) -> tuple[Ref, Obj] | None:
    """A random unique expression: a kind uniformly among those available, then an object."""
    found = unique_refs(scene, kinds, obj)
    if not found:
        return None
    kind = rng.choice(sorted({r.kind for r, _ in found}))
    return rng.choice([(r, o) for r, o in found if r.kind == kind])


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- boxes and points of objects -------------------------------------------------------


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


# --- inline boxes: every bracket grounds the phrase right before it ----------------------


def grounded_phrases(text: str) -> list[tuple[str | None, list[tuple[float, ...]]]]:
    """``(phrase, boxes)`` for every bracket of a text, in order; the phrase is the referring
    expression or counted group ("2 red objects") that ends right before the bracket, or None.
    Raises BoxParseError for malformed brackets."""
    out = []
    prev = 0
    for start, end, inner in find_brackets(text):
        before = text[prev:start]
        m = _EXPR_AT_END.search(before) or _GROUP_AT_END.search(before)
        out.append((m.group(0).strip() if m else None, parse_bracket(inner)))
        prev = end
    return out


def phrase_objects(scene: Scene, phrase: str) -> list[Obj] | None:
    """The objects a grounded phrase names: one for an expression (None if not unique), all
    of a counted group (None if the count is wrong)."""
    ref = read_expression(phrase)
    if ref is not None:
        obj = resolve_ref(scene, ref)
        return [obj] if obj is not None else None
    m = _GROUP_AT_END.fullmatch(phrase)
    if m is None:
        return None
    ref = _ref(m)
    objs = [o for o in scene.objects if ref.fits(o)]
    return objs if objs and len(objs) == int(m.group("n")) else None


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


def _read_one(text: str, numbers: int) -> tuple[float, ...] | None:
    try:
        groups = parse_bracket(text)
    except BoxParseError:
        return None
    return groups[0] if len(groups) == 1 and len(groups[0]) == numbers else None


# --- PointQA: a point or a box in the question, answered in words; or box candidates -----


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
        where = _read_one(m.group("where"), self.numbers) if m else None
        if where is None:
            return None
        obj = object_at_point(scene, where) if self.numbers == 2 else object_for_box(scene, where)
        return self.answer(obj) if obj is not None else None


POINT_KINDS: tuple[PointKind, ...] = (
    PointKind(
        "point_color",
        "What color is the object at {where}?",
        re.compile(rf"What color is the object at (?P<where>{_BRACKET})\?"),
        2,
        lambda o: o.color,
    ),
    PointKind(
        "point_shape",
        "Which shape is at {where}?",
        re.compile(rf"Which shape is at (?P<where>{_BRACKET})\?"),
        2,
        lambda o: o.shape,
    ),
    PointKind(
        "point_name",
        "Name the object at {where}.",
        re.compile(rf"Name the object at (?P<where>{_BRACKET})\."),
        2,
        lambda o: o.name,
    ),
    PointKind(
        "region_name",
        "Classify the object in {where}.",
        re.compile(rf"Classify the object in (?P<where>{_BRACKET})\."),
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


# --- Q -> C^Box A: a question, a reasoning chain with inline boxes, an answer ------------

DIRECTIONS = {
    "directly right of": (0, 1),
    "directly left of": (0, -1),
    "directly above": (-1, 0),
    "directly below": (1, 0),
}
_DIR = "|".join(DIRECTIONS)


@dataclass(frozen=True)
class ReasoningKind:
    name: str
    template: str  # with {expression} (and {direction})
    pattern: re.Pattern
    expression_kinds: tuple[str, ...]  # kinds that do not give the answer away


REASONING_KINDS: tuple[ReasoningKind, ...] = (
    ReasoningKind(
        "same_color_count",
        "How many objects have the color of {expression}?",
        re.compile(r"How many objects have the color of (?P<expression>.+?)\?"),
        ("shape", "shape_position", "position"),
    ),
    ReasoningKind(
        "same_shape_count",
        "Count the objects with the shape of {expression}.",
        re.compile(r"Count the objects with the shape of (?P<expression>.+?)\."),
        ("color", "position"),
    ),
    ReasoningKind(
        "neighbor_color",
        "What color is the object {direction} {expression}?",
        re.compile(rf"What color is the object (?P<direction>{_DIR}) (?P<expression>.+?)\?"),
        ("color_shape", "shape", "color"),
    ),
)
REASONING_BY_NAME = {k.name: k for k in REASONING_KINDS}


def neighbor(scene: Scene, obj: Obj, direction: str) -> Obj | None:
    dr, dc = DIRECTIONS[direction]
    r, c = divmod(obj.cell, scene.grid)
    r, c = r + dr, c + dc
    if not (0 <= r < scene.grid and 0 <= c < scene.grid):
        return None
    return scene.at(r * scene.grid + c)


def _plural(noun: str, n: int) -> str:
    return noun if n == 1 else f"{noun}s"


def _there(n: int) -> str:
    return "There is" if n == 1 else "There are"


def _boxes_of(scene: Scene, objs: Sequence[Obj]) -> str:
    return format_boxes([object_box(scene, o) for o in objs])


def reasoning_chain(scene: Scene, name: str, params: dict) -> tuple[str, str] | None:
    """``(chain, answer)`` for a reasoning question's params; None if it has no single answer.
    The chain grounds every object it mentions with a box right after the phrase."""
    obj = resolve(scene, params["expression"])
    if obj is None:
        return None
    head = capitalize(params["expression"]) + _boxes_of(scene, [obj])
    if name == "same_color_count":
        group = scene.find(color=obj.color)
        n = len(group)
        return (
            f"{head} is {obj.color}. {_there(n)} {n} {obj.color} {_plural('object', n)}"
            f"{_boxes_of(scene, group)}.",
            str(n),
        )
    if name == "same_shape_count":
        group = scene.find(shape=obj.shape)
        n = len(group)
        return (
            f"{head} is a {obj.shape}. {_there(n)} {n} {_plural(obj.shape, n)}"
            f"{_boxes_of(scene, group)}.",
            str(n),
        )
    if name == "neighbor_color":
        other = neighbor(scene, obj, params["direction"])
        if other is None:
            return None
        return (
            f"{head} is at the {obj.position}. The object at the {other.position}"
            f"{_boxes_of(scene, [other])} is {other.color}.",
            other.color,
        )
    raise ValueError(f"unknown reasoning kind {name!r}")


def ask_reasoning(scene: Scene, rng: random.Random) -> tuple[str, str, str, str] | None:
    """``(kind, question, chain, answer)`` of a random answerable reasoning question."""
    kinds = list(REASONING_KINDS)
    rng.shuffle(kinds)
    for kind in kinds:
        options = []
        for ref, obj in unique_refs(scene, kind.expression_kinds):
            if kind.name == "neighbor_color":
                options += [
                    {"expression": ref.text(), "direction": d}
                    for d in DIRECTIONS
                    if neighbor(scene, obj, d) is not None
                ]
            else:
                options.append({"expression": ref.text()})
        if options:
            params = rng.choice(options)
            chain, answer = reasoning_chain(scene, kind.name, params)  # type: ignore[misc]
            return kind.name, kind.template.format(**params), chain, answer
    return None


def classify_reasoning(question: str) -> tuple[str, dict] | None:
    for kind in REASONING_KINDS:
        m = kind.pattern.fullmatch(question.strip())
        if m:
            return kind.name, m.groupdict()
    return None


def reasoning_truth(scene: Scene, question: str) -> tuple[str, str | None]:
    """``(kind, true answer)``; kind "unknown" for questions not ours, answer None when the
    question has no single answer in this scene."""
    found = classify_reasoning(question)
    if found is None:
        return "unknown", None
    name, params = found
    made = reasoning_chain(scene, name, params)
    return name, made[1] if made else None


# --- referential dialogue: REC- and REG-like turns with boxes inline ---------------------

RD_KINDS = ("rd_locate", "rd_region", "rd_color", "rd_shape")
_RD_PATTERNS = {
    "rd_locate": re.compile(r"Where is (?P<expression>.+?)\?"),
    "rd_region": re.compile(rf"What is in the region (?P<box>{_BRACKET})\?"),
    "rd_color": re.compile(rf"What color is (?P<expression>.+?)\s*(?P<box>{_BRACKET})\?"),
    "rd_shape": re.compile(rf"Which shape is (?P<expression>.+?)\s*(?P<box>{_BRACKET})\?"),
}
_RD_LOCATE_ANSWER = re.compile(
    rf"(?P<expression>.+?)\s*(?P<box>{_BRACKET}) is at the (?P<pos>{_POS})"
)
# Expression kinds per turn kind that do not give the answer away.
_RD_EXPRESSIONS = {
    "rd_locate": ("color_shape", "shape", "color"),
    "rd_region": EXPRESSION_KINDS,
    "rd_color": ("shape", "shape_position", "position"),
    "rd_shape": ("color", "position"),
}


def ask_dialogue_turn(scene: Scene, rng: random.Random, name: str) -> tuple[str, str] | None:
    """``(question, answer)`` of one referential-dialogue turn kind."""
    picked = pick_ref(scene, rng, _RD_EXPRESSIONS[name])
    if picked is None:
        return None
    ref, obj = picked
    box = format_box(object_box(scene, obj))
    if name == "rd_locate":
        return f"Where is {ref.text()}?", f"{capitalize(ref.text())}{box} is at the {obj.position}"
    if name == "rd_region":
        return f"What is in the region {box}?", ref.text()
    if name == "rd_color":
        return f"What color is {ref.text()}{box}?", obj.color
    return f"Which shape is {ref.text()}{box}?", obj.shape


def classify_dialogue_turn(question: str) -> str | None:
    for name, pattern in _RD_PATTERNS.items():
        if pattern.fullmatch(question.strip()):
            return name
    return None


def _norm(text: str) -> str:
    return text.strip().removesuffix(".").strip().lower()


def dialogue_turn_ok(scene: Scene, question: str, answer: str) -> tuple[str, bool]:
    """``(kind, true?)`` for one turn: the named object is unique, every inline box outlines
    what its phrase names, and the answer is right."""
    name = classify_dialogue_turn(question)
    if name is None:
        return "rd_unknown", False
    m = _RD_PATTERNS[name].fullmatch(question.strip())
    if name == "rd_region":
        box = _read_one(m.group("box"), 4)
        obj = resolve(scene, answer)
        return name, box is not None and obj is not None and box_matches(scene, box, obj)
    obj = resolve(scene, m.group("expression"))
    if obj is None or not (inline_boxes_ok(scene, question) and inline_boxes_ok(scene, answer)):
        return name, False
    if name == "rd_locate":
        a = _RD_LOCATE_ANSWER.fullmatch(answer.strip().removesuffix("."))
        return name, bool(
            a and resolve(scene, a.group("expression")) is obj and a.group("pos") == obj.position
        )
    truth = obj.color if name == "rd_color" else obj.shape
    return name, _norm(answer) == truth
