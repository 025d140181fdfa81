"""The question bank of the built-in world: every kind of question, how to ask it about a
scene, how to read it back from text, and its true answer.

Each kind starts with its own first word on purpose: a generator sampled at a low temperature
sharpens its first-token distribution, so kinds that share a first word would crowd out the
others. Answers are short phrases: numbers as digits, colours, shapes, positions.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from genixer.core.record import QA
from genixer.world.scene import COLORS, POSITIONS, SHAPES, Scene

_SHAPE = "|".join(SHAPES)
_COLOR = "|".join(COLORS)
_POS = "|".join(sorted(POSITIONS, key=len, reverse=True))


@dataclass(frozen=True)
class QuestionKind:
    name: str
    template: str  # str.format template over the params
    pattern: re.Pattern  # reads the params back from a question
    answer_space: tuple[str, ...]
    # (scene, rng) -> params or None when the scene offers no valid question of this kind
    pick: Callable[[Scene, random.Random], dict | None]
    truth: Callable[[Scene, dict], str | None]

    def ask(self, scene: Scene, rng: random.Random) -> tuple[str, str, dict] | None:
        params = self.pick(scene, rng)
        if params is None:
            return None
        answer = self.truth(scene, params)
        if answer is None:
            return None
        return self.template.format(**params), answer, params

    def read(self, question: str) -> dict | None:
        m = self.pattern.fullmatch(question.strip())
        return m.groupdict() if m else None


def _unique_shape(scene: Scene, rng: random.Random) -> dict | None:
    shapes = [s for s in SHAPES if scene.count(shape=s) == 1]
    return {"shape": rng.choice(shapes)} if shapes else None


def _unique_color(scene: Scene, rng: random.Random) -> dict | None:
    colors = [c for c in COLORS if scene.count(color=c) == 1]
    return {"color": rng.choice(colors)} if colors else None


def _unique_object(scene: Scene, rng: random.Random) -> dict | None:
    objs = [o for o in scene.objects if scene.count(o.shape, o.color) == 1]
    if not objs:
        return None
    o = rng.choice(objs)
    return {"color": o.color, "shape": o.shape}


def _occupied_cell(scene: Scene, rng: random.Random) -> dict | None:
    return {"position": rng.choice(scene.objects).position} if scene.objects else None


def _exists_pick(scene: Scene, rng: random.Random) -> dict | None:
    """Half present, half absent; absent ones share a colour or shape with a present object
    when possible (POPE's adversarial negatives)."""
    if rng.random() < 0.5 and scene.objects:
        o = rng.choice(scene.objects)
        return {"color": o.color, "shape": o.shape}
    absent = [(c, s) for c in COLORS for s in SHAPES if scene.count(s, c) == 0]
    near = [(c, s) for c, s in absent if scene.count(shape=s) > 0 or scene.count(color=c) > 0]
    c, s = rng.choice(near or absent)
    return {"color": c, "shape": s}


def _one(scene: Scene, shape: str | None = None, color: str | None = None):
    found = scene.find(shape=shape, color=color)
    return found[0] if len(found) == 1 else None


def _position_truth(scene: Scene, p: dict) -> str | None:
    o = _one(scene, p["shape"], p["color"])
    return o.position if o else None


def _object_at_truth(scene: Scene, p: dict) -> str | None:
    o = scene.at(POSITIONS.index(p["position"]))
    return o.name if o else None


_COUNTS = tuple(str(i) for i in range(10))

KINDS: tuple[QuestionKind, ...] = (
    QuestionKind(
        name="count_shape",
        template="How many {shape}s are there?",
        pattern=re.compile(rf"How many (?P<shape>{_SHAPE})s are there\?"),
        answer_space=_COUNTS,
        pick=lambda s, r: {"shape": r.choice(SHAPES)},
        truth=lambda s, p: str(s.count(shape=p["shape"])),
    ),
    QuestionKind(
        name="count_color",
        template="Count the {color} objects.",
        pattern=re.compile(rf"Count the (?P<color>{_COLOR}) objects\."),
        answer_space=_COUNTS,
        pick=lambda s, r: {"color": r.choice(COLORS)},
        truth=lambda s, p: str(s.count(color=p["color"])),
    ),
    QuestionKind(
        name="count_all",
        template="Tell me the number of objects.",
        pattern=re.compile(r"Tell me the number of objects\."),
        answer_space=_COUNTS,
        pick=lambda s, r: {},
        truth=lambda s, p: str(len(s.objects)),
    ),
    QuestionKind(
        name="color_of_shape",
        template="What color is the {shape}?",
        pattern=re.compile(rf"What color is the (?P<shape>{_SHAPE})\?"),
        answer_space=COLORS,
        pick=_unique_shape,
        truth=lambda s, p: o.color if (o := _one(s, shape=p["shape"])) else None,
    ),
    QuestionKind(
        name="shape_of_color",
        template="Which shape is {color}?",
        pattern=re.compile(rf"Which shape is (?P<color>{_COLOR})\?"),
        answer_space=SHAPES,
        pick=_unique_color,
        truth=lambda s, p: o.shape if (o := _one(s, color=p["color"])) else None,
    ),
    QuestionKind(
        name="position",
        template="Where is the {color} {shape}?",
        pattern=re.compile(rf"Where is the (?P<color>{_COLOR}) (?P<shape>{_SHAPE})\?"),
        answer_space=POSITIONS,
        pick=_unique_object,
        truth=_position_truth,
    ),
    QuestionKind(
        name="object_at",
        template="Identify the object at the {position}.",
        pattern=re.compile(rf"Identify the object at the (?P<position>{_POS})\."),
        answer_space=tuple(f"{c} {s}" for c in COLORS for s in SHAPES),
        pick=_occupied_cell,
        truth=_object_at_truth,
    ),
    QuestionKind(
        name="exists",
        template="Is there a {color} {shape}?",
        pattern=re.compile(rf"Is there an? (?P<color>{_COLOR}) (?P<shape>{_SHAPE})\?"),
        answer_space=("yes", "no"),
        pick=_exists_pick,
        truth=lambda s, p: "yes" if s.count(p["shape"], p["color"]) > 0 else "no",
    ),
)
BY_NAME = {k.name: k for k in KINDS}
# Adversarial (POPE-like) data asks existence only; the other kinds form common VQA.
EXISTENCE = ("exists",)
OPEN_KINDS = tuple(k.name for k in KINDS if k.name not in EXISTENCE)


def plain_conversation(scene: Scene, rng: random.Random) -> list[QA]:
    """Every kind of question the scene allows, once, in random order: dense VQA supervision
    (one image's questions in one multi-turn sequence learn faster than one per sequence)."""
    out = []
    for kind in KINDS:
        asked = kind.ask(scene, rng)
        if asked is not None:  # None: the scene does not allow this kind (no unique shape...)
            out.append(QA(asked[0], asked[1], kind=kind.name))
    rng.shuffle(out)
    return out


def classify(question: str) -> tuple[QuestionKind, dict] | None:
    """Which kind a question is, with its params; None when it is none of ours."""
    for kind in KINDS:
        params = kind.read(question)
        if params is not None:
            return kind, params
    return None


def true_answer(scene: Scene, question: str) -> tuple[str, str | None]:
    """``(kind name, true answer)``; answer None when the question has no single true answer
    in this scene (e.g. "What color is the circle?" with two circles); kind "unknown" when
    the question is not one the world can judge."""
    found = classify(question)
    if found is None:
        return "unknown", None
    kind, params = found
    return kind.name, kind.truth(scene, params)


_DOMAINS = {"shape": SHAPES, "color": COLORS, "position": POSITIONS}


def random_question(
    scene: Scene, rng: random.Random, kinds: tuple[str, ...], answerable: float = 0.8
) -> tuple[str, str, str | None]:
    """``(kind, question, true answer or None)``: with probability ``answerable`` a question
    the scene can answer, else one with random params (which may have no single answer, like
    "What color is the circle?" with two circles): the judge must learn to refuse those."""
    kind = BY_NAME[rng.choice(kinds)]
    params = kind.pick(scene, rng) if rng.random() < answerable else None
    if params is None:
        names = re.findall(r"\{(\w+)\}", kind.template)
        params = {n: rng.choice(_DOMAINS[n]) for n in names}
    return kind.name, kind.template.format(**params), kind.truth(scene, params)


def _confusable(scene: Scene, kind: str, params: dict, truth: str | None) -> list[str]:
    """Wrong answers a generator with a blurry view of the scene would give: counts off by
    one, positions and names of the other objects in the scene, a near miss in colour or
    shape. The judge must learn to reject these, not only absurd answers."""
    if kind.startswith("count") and truth is not None:
        n = int(truth)
        return [str(v) for v in (n - 1, n + 1) if 0 <= v <= 9]
    if kind == "position":
        return [o.position for o in scene.objects]
    if kind == "object_at":
        names = [o.name for o in scene.objects]
        if truth is not None:
            color, shape = truth.split(" ")
            names += [f"{c} {shape}" for c in COLORS] + [f"{color} {s}" for s in SHAPES]
        return names
    if kind == "color_of_shape":
        return [o.color for o in scene.objects]
    if kind == "shape_of_color":
        return [o.shape for o in scene.objects]
    return []


def wrong_answer(
    scene: Scene, question: str, truth: str | None, rng: random.Random, hard: float = 0.5
) -> str:
    """An answer to ``question`` that is not ``truth``: with probability ``hard`` a confusable
    one (see ``_confusable``) when the scene offers any, else uniform over the answer space."""
    kind, params = classify(question)
    space = [a for a in kind.answer_space if a != truth]
    near = [a for a in _confusable(scene, kind.name, params, truth) if a in space]
    return rng.choice(near if near and rng.random() < hard else space)
