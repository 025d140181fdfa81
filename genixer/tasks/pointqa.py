"""PointQA: a question about the object at a point ``[x,y]`` or in a box, answered in words
(PointQA-Local style), or a Visual7W-like pointing question that lists candidate boxes and is
answered with one of them.

``Question: What color is the object at [0.156,0.167]? Answer: red.``
``Question: Select the box that holds the red circle. Candidates: [0.021,0.042,0.292,0.313],
[0.375,0.354,0.646,0.625], [0.688,0.021,0.958,0.292], [0.042,0.708,0.313,0.979].
Answer: [0.021,0.042,0.292,0.313]`` (one line)
"""

from __future__ import annotations

import random
import re

from genixer.core.boxes import format_box
from genixer.core.record import QA
from genixer.tasks.base import ParseError
from genixer.tasks.rec import GroundingTask, grounded_qa, read_brackets, read_one_box
from genixer.world.pointing import (
    CANDIDATES_MARK,
    CHOOSE_BOX,
    POINT_BY_NAME,
    POINTQA_KINDS,
    ask_point,
    choose_box_truth,
    classify_point,
    format_candidates,
)
from genixer.world.scene import Scene

_SAME = 5e-4  # two written boxes are the same candidate (3-decimal text)


def point_question(question: str, where: str) -> str:
    """A dataset's question about the object at one point or in one box (PointQA-Local):
    ``What color is the shirt?`` + ``[0.412,0.300]`` -> ``What color is the shirt at
    [0.412,0.300]?``."""
    question = question.strip()
    if question.endswith("?"):
        return f"{question[:-1].rstrip()} at {where}?"
    return f"{question} ({where})"


def candidates_question(question: str, boxes) -> str:
    """A Visual7W pointing question with its candidate boxes, in the form :meth:`PointQA.parse`
    reads back."""
    return f"{question.strip()} {CANDIDATES_MARK} {format_candidates(boxes)}."


def _same_box(a, b) -> bool:
    return all(abs(x - y) <= _SAME for x, y in zip(a, b, strict=True))


class PointQA(GroundingTask):
    name = "pointqa"
    kinds = POINTQA_KINDS

    def sample(self, scene: Scene, rng: random.Random) -> list[QA] | None:
        kind = rng.choice(POINTQA_KINDS)
        asked = ask_point(scene, rng, kind)
        return [grounded_qa(asked[0], asked[1], kind)] if asked else None

    def parse(self, text: str) -> list[QA]:
        ((q, a),) = self._pairs(text)
        if CANDIDATES_MARK in q:
            return [self._parse_candidates(q, a)]
        groups = read_brackets(q, allow_points=True)
        if not groups:
            raise ParseError("no_box", "no point or box in the question")
        if len(groups) > 1:
            raise ParseError("bad_box", "expected one point or box in the question")
        if read_brackets(a):
            raise ParseError("bad_answer", "a box in a word answer")
        return [grounded_qa(q, a)]

    def _parse_candidates(self, q: str, a: str) -> QA:
        head, tail = q.split(CANDIDATES_MARK, 1)
        if read_brackets(head):
            raise ParseError("bad_question", "a box before the candidates")
        groups = read_brackets(tail)
        if any(len(g) != 1 for g in groups):
            raise ParseError("bad_box", "a candidate holds several boxes")
        cands = [g[0] for g in groups]
        if len(cands) < 2:
            raise ParseError("too_few_candidates", str(len(cands)))
        if re.sub(r"\[[^\[\]]*\]", "", tail).strip(" ,.") != "":
            raise ParseError("bad_candidates", tail[:40])
        answer = read_one_box(a)
        if not any(_same_box(answer, c) for c in cands):
            raise ParseError("not_a_candidate", a[:40])
        question = f"{head.strip()} {CANDIDATES_MARK} {format_candidates(cands)}."
        return grounded_qa(question, format_box(answer))

    def check_turn(self, scene: Scene, qa: QA) -> tuple[str, bool]:
        kind = classify_point(qa.question)
        if kind is None:
            return "pointqa_unknown", False
        if kind == CHOOSE_BOX:
            truth = choose_box_truth(scene, qa.question)
            try:
                answer = read_one_box(qa.answer)
            except ParseError:
                return kind, False
            return kind, truth is not None and _same_box(answer, truth)
        truth = POINT_BY_NAME[kind].truth(scene, qa.question)
        return kind, truth is not None and self._answer_ok(qa, truth)
