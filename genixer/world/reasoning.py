"""Q -> C^Box A on the built-in world: a question, a reasoning chain that grounds every
object it mentions with an inline box, and the answer."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from genixer.core.boxes import format_boxes
from genixer.world.object_boxes import object_box
from genixer.world.referring import capitalize, resolve, unique_refs
from genixer.world.scene import Obj, Scene

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
