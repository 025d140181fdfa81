"""Referring expressions of the built-in world: what a phrase names in a scene.

Expressions follow one grammar, ``the [color] (shape|object) [at the position]``:
``the red circle``, ``the circle``, ``the red object``, ``the circle at the top left``,
``the object at the center``. An expression is valid in a scene iff exactly one object fits it.
A text may also ground a phrase with a bracket of boxes right after it (Shikra style): the
phrase is then an expression or a counted group (``2 red objects``), read here too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from genixer.core.boxes import find_brackets, parse_bracket
from genixer.world.scene import COLORS, POSITIONS, SHAPES, Obj, Scene

_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
# Regex alternatives of the cell names, longest first so "top left" wins over "top".
POSITION_PATTERN = "|".join(sorted(POSITIONS, key=len, reverse=True))

# The kinds a sample uses (each names its attributes); the grammar reads any combination.
EXPRESSION_KINDS = ("color_shape", "shape", "color", "shape_position", "position")
_EXPR = (
    rf"the (?:(?P<color>{_COLOR}) )?(?:(?P<shape>{_SHAPE})|object)"
    rf"(?: at the (?P<position>{POSITION_PATTERN}))?"
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


# --- grounded phrases: every bracket grounds the phrase right before it --------------------


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
