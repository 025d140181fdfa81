"""REC (referring expression comprehension): an expression -> its box.

``Question: Where is the red circle in the image? Answer: [0.021,0.042,0.292,0.313]``
(a box answer carries no final period). Also the base of the other grounding tasks: reading
boxes out of generated text with parse reasons, and the pair format with box answers.

``QA.boxes`` of every grounding task holds all boxes written in the pair, in reading order
(question, then answer; a point ``[x,y]`` as the zero-size box ``[x,y,x,y]``), normalized to
the original image frame.
"""

from __future__ import annotations

import random
import re

from genixer.core.boxes import (
    BoxParseError,
    find_brackets,
    format_box,
    iou,
    parse_bracket,
)
from genixer.core.record import QA
from genixer.tasks.base import (
    ANSWER_MARKER,
    QUESTION_MARKER,
    ParseError,
    Task,
    format_pair,
    parse_pairs,
)
from genixer.world.object_boxes import IOU_THRESHOLD, object_box
from genixer.world.referring import EXPRESSION_KINDS, pick_ref, read_expression, resolve_ref
from genixer.world.scene import Scene

Box = tuple[float, float, float, float]


# --- box text -> values, with parse reasons ----------------------------------------------


def read_brackets(text: str, allow_points: bool = False) -> list[list[tuple[float, ...]]]:
    """The groups of every bracket of a text, in order. Raises ParseError ``bad_box`` for an
    unbalanced bracket, a group that is not 4 numbers in [0, 1] (or 2, for points), or an
    inverted box."""
    try:
        found = find_brackets(text)
        groups = [parse_bracket(inner, strict=True) for _, _, inner in found]
    except BoxParseError as err:
        raise ParseError("bad_box", str(err)) from None
    for g in groups:
        for vals in g:
            if len(vals) != 4 and not (allow_points and len(vals) == 2 and len(g) == 1):
                raise ParseError("bad_box", f"expected a box of 4 numbers: {vals}")
    return groups


def read_one_box(text: str) -> Box:
    """A text that is exactly one box ``[x0,y0,x1,y1]``: ``no_box`` without a bracket,
    ``bad_box`` for a malformed one or a ``;`` list, ``extra_text`` for words around it."""
    groups = read_brackets(text)
    if not groups:
        raise ParseError("no_box", text[:40])
    if len(groups) > 1 or len(groups[0]) > 1:
        raise ParseError("bad_box", f"expected one box: {text[:60]!r}")
    if not re.fullmatch(r"\s*\[[^\[\]]*\]\s*", text):
        raise ParseError("extra_text", text[:40])
    return groups[0][0]  # type: ignore[return-value]


def boxes_in(*texts: str) -> list[list[float]]:
    """All boxes written in the texts, in order; a point as a zero-size box."""
    out = []
    for text in texts:
        for group in read_brackets(text, allow_points=True):
            for vals in group:
                out.append(list(vals) if len(vals) == 4 else [*vals, *vals])
    return out


def format_grounded_pair(question: str, answer: str) -> str:
    """``format_pair``, except that a bare box answer takes no final period."""
    if re.fullmatch(r"\[[^\[\]]*\]", answer.strip()):
        return f"{QUESTION_MARKER} {question.strip()} {ANSWER_MARKER} {answer.strip()}"
    return format_pair(question, answer)


def grounded_qa(question: str, answer: str, kind: str | None = None) -> QA:
    return QA(question, answer, kind=kind, boxes=boxes_in(question, answer))


class GroundingTask(Task):
    """Base of the five grounding tasks: box-aware pair format and per-turn oracle."""

    group = "grounding"

    def serialize(self, turns: list[QA]) -> str:
        return "\n".join(format_grounded_pair(t.question, t.answer) for t in turns)

    def _pairs(self, text: str) -> list[tuple[str, str]]:
        pairs = parse_pairs(text)
        lo, hi = self.num_turns
        if not lo <= len(pairs) <= hi:
            raise ParseError("wrong_turn_count", f"{len(pairs)} pairs for {self.name}")
        return pairs

    def oracle_error(self, scene: Scene, turns: list[QA]) -> str | None:
        """The first false turn's reason (``error_reason``), or None when every turn is true
        of the scene; fills in each turn's ``kind``."""
        error = None
        for t in turns:
            kind, good = self.check_turn(scene, t)
            t.kind = kind
            if not good and error is None:
                error = self.error_reason(scene, t)
        return error

    def check_turn(self, scene: Scene, qa: QA) -> tuple[str, bool]:
        raise NotImplementedError

    def error_reason(self, scene: Scene, qa: QA) -> str:
        """Why a false turn is false, where a task can say more than this."""
        return "not_true_of_scene"


# --- REC --------------------------------------------------------------------------------

QUESTION = "Where is {expression} in the image?"
QUESTION_RE = re.compile(r"Where is (?P<expression>.+?) in the image\?")


def rec_oracle_detail(scene: Scene, qa: QA) -> dict:
    """``{"unique": the expression names exactly one object, "iou": IoU of the answer box
    with that object's box (None when not unique or no readable box), "kind"}``."""
    m = QUESTION_RE.fullmatch(qa.question.strip())
    ref = read_expression(m.group("expression")) if m else None
    obj = resolve_ref(scene, ref) if ref is not None else None
    try:
        box = read_one_box(qa.answer)
    except ParseError:
        box = None
    score = iou(box, scene.norm_box(obj)) if obj is not None and box is not None else None
    return {
        "unique": obj is not None,
        "iou": score,
        "kind": f"rec_{ref.kind}" if ref is not None else "rec_unknown",
    }


class REC(GroundingTask):
    name = "rec"
    kinds = tuple(f"rec_{k}" for k in EXPRESSION_KINDS)

    def sample(self, scene: Scene, rng: random.Random) -> list[QA] | None:
        """A unique expression, its kind drawn uniformly among those the scene allows, and
        its object's box."""
        picked = pick_ref(scene, rng, EXPRESSION_KINDS)
        if picked is None:
            return None
        ref, obj = picked
        return [
            grounded_qa(
                QUESTION.format(expression=ref.text()),
                format_box(object_box(scene, obj)),
                f"rec_{ref.kind}",
            )
        ]

    def parse(self, text: str) -> list[QA]:
        ((q, a),) = self._pairs(text)
        if not QUESTION_RE.fullmatch(q):
            raise ParseError("bad_question", q[:40])
        return [grounded_qa(q, format_box(read_one_box(a)))]

    def check_turn(self, scene: Scene, qa: QA) -> tuple[str, bool]:
        d = rec_oracle_detail(scene, qa)
        return d["kind"], d["unique"] and d["iou"] is not None and d["iou"] >= IOU_THRESHOLD

    def error_reason(self, scene: Scene, qa: QA) -> str:
        d = rec_oracle_detail(scene, qa)
        if not d["unique"]:
            return "expression_not_unique"
        return "no_box" if d["iou"] is None else "box_iou_below_threshold"
