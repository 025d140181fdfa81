"""Referential dialogue on the built-in world: REC- and REG-like turns with boxes inline,
and whether a turn is true of a scene."""

from __future__ import annotations

import random
import re

from genixer.core.boxes import format_box
from genixer.world.object_boxes import (
    BRACKET_PATTERN,
    box_matches,
    inline_boxes_ok,
    object_box,
    read_single_group,
)
from genixer.world.referring import (
    EXPRESSION_KINDS,
    POSITION_PATTERN,
    capitalize,
    pick_ref,
    resolve,
)
from genixer.world.scene import Scene

RD_KINDS = ("rd_locate", "rd_region", "rd_color", "rd_shape")
_RD_PATTERNS = {
    "rd_locate": re.compile(r"Where is (?P<expression>.+?)\?"),
    "rd_region": re.compile(rf"What is in the region (?P<box>{BRACKET_PATTERN})\?"),
    "rd_color": re.compile(rf"What color is (?P<expression>.+?)\s*(?P<box>{BRACKET_PATTERN})\?"),
    "rd_shape": re.compile(rf"Which shape is (?P<expression>.+?)\s*(?P<box>{BRACKET_PATTERN})\?"),
}
_RD_LOCATE_ANSWER = re.compile(
    rf"(?P<expression>.+?)\s*(?P<box>{BRACKET_PATTERN}) is at the (?P<pos>{POSITION_PATTERN})"
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
        box = read_single_group(m.group("box"), 4)
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
