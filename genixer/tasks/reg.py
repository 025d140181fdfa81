"""REG (referring expression generation): a box -> an expression that names only it.

``Question: Describe the region [0.021,0.042,0.292,0.313]. Answer: the red circle.``
"""

from __future__ import annotations

import random

from genixer.core.boxes import format_box
from genixer.core.record import QA
from genixer.tasks.base import ParseError
from genixer.tasks.rec import GroundingTask, grounded_qa, read_brackets, read_one_box
from genixer.world.object_boxes import box_matches, object_box
from genixer.world.referring import EXPRESSION_KINDS, pick_ref, read_expression, resolve_ref
from genixer.world.scene import Scene

PREFIX = "Describe the region"
QUESTION = PREFIX + " {box}."


class REG(GroundingTask):
    name = "reg"
    kinds = tuple(f"reg_{k}" for k in EXPRESSION_KINDS)

    def sample(self, scene: Scene, rng: random.Random) -> list[QA] | None:
        picked = pick_ref(scene, rng)
        if picked is None:
            return None
        ref, obj = picked
        question = QUESTION.format(box=format_box(object_box(scene, obj)))
        return [grounded_qa(question, ref.text(), f"reg_{ref.kind}")]

    def parse(self, text: str) -> list[QA]:
        ((q, a),) = self._pairs(text)
        if not q.startswith(PREFIX):
            raise ParseError("bad_question", q[:40])
        box = read_one_box(q[len(PREFIX) :].strip().removesuffix("."))
        if read_brackets(a):
            raise ParseError("bad_answer", "a box in a REG answer")
        return [grounded_qa(QUESTION.format(box=format_box(box)), a)]

    def check_turn(self, scene: Scene, qa: QA) -> tuple[str, bool]:
        """The expression names exactly one object, and the region outlines it."""
        ref = read_expression(qa.answer)
        if ref is None:
            return "reg_unknown", False
        obj = resolve_ref(scene, ref)
        if not qa.question.strip().startswith(PREFIX):
            return f"reg_{ref.kind}", False
        try:
            box = read_one_box(qa.question.strip()[len(PREFIX) :].strip().removesuffix("."))
        except ParseError:
            return f"reg_{ref.kind}", False
        return f"reg_{ref.kind}", obj is not None and box_matches(scene, box, obj)
