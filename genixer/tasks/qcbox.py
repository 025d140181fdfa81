"""Q->C^Box A: a question, then a reasoning chain whose phrases carry their boxes inline,
then the answer.

``Question: How many objects have the color of the circle? Answer: The circle[0.021,0.042,
0.292,0.313] is red. There are 2 red objects[0.021,0.042,0.292,0.313;0.354,0.688,0.625,0.958].
So the answer is 2.`` (one line)
"""

from __future__ import annotations

import random
import re

from genixer.core.record import QA
from genixer.tasks.base import ParseError
from genixer.tasks.rec import GroundingTask, grounded_qa, read_brackets
from genixer.world.object_boxes import inline_boxes_ok
from genixer.world.reasoning import REASONING_BY_NAME, ask_reasoning, reasoning_truth
from genixer.world.scene import Scene

FINAL = "So the answer is"
_FINAL_RE = re.compile(rf"(?P<chain>.*?)\s*{FINAL} (?P<answer>[^\[\]]+?)\s*", re.DOTALL)


def split_answer(answer: str) -> tuple[str, str]:
    """``(chain, final answer)`` of a Q->C^Box A answer; ParseError when it has none."""
    m = _FINAL_RE.fullmatch(answer.strip().removesuffix("."))
    if m is None:
        raise ParseError("no_final_answer", answer[-40:])
    if not m.group("chain").strip():
        raise ParseError("no_reasoning")
    return m.group("chain").strip(), m.group("answer").strip()


def join_answer(chain: str, answer: str) -> str:
    return f"{chain.strip()} {FINAL} {answer.strip()}"


class QCBox(GroundingTask):
    name = "qcbox"
    kinds = tuple(REASONING_BY_NAME)

    def sample(self, scene: Scene, rng: random.Random) -> list[QA] | None:
        asked = ask_reasoning(scene, rng)
        if asked is None:
            return None
        kind, question, chain, answer = asked
        return [grounded_qa(question, join_answer(chain, answer), kind)]

    def parse(self, text: str) -> list[QA]:
        ((q, a),) = self._pairs(text)
        chain, answer = split_answer(a)
        read_brackets(q)  # boxes in the question are allowed, if well formed
        if not read_brackets(chain):
            raise ParseError("no_box", "a reasoning chain without boxes")
        return [grounded_qa(q, join_answer(chain, answer))]

    def check_turn(self, scene: Scene, qa: QA) -> tuple[str, bool]:
        """The final answer is the true one, and every inline box (question and chain)
        outlines what the phrase before it names."""
        kind, truth = reasoning_truth(scene, qa.question)
        if truth is None:
            return kind, False
        try:
            chain, answer = split_answer(qa.answer)
        except ParseError:
            return kind, False
        grounded = inline_boxes_ok(scene, qa.question) and inline_boxes_ok(scene, chain)
        return kind, grounded and self._answer_ok(QA(qa.question, answer), truth)
