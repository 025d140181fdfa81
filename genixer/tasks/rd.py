"""RD (referential dialogue): 2-3 REC- and REG-like turns about one image, boxes inline
right after the phrases they ground.

``Question: Where is the red circle? Answer: The red circle[0.021,0.042,0.292,0.313] is at
the top left.\\nQuestion: What is in the region [0.354,0.688,0.625,0.958]? Answer: the
square.`` (one line per turn)
"""

from __future__ import annotations

import random

from genixer.core.record import QA
from genixer.tasks.base import ParseError
from genixer.tasks.rec import GroundingTask, grounded_qa
from genixer.world.dialogue import RD_KINDS, ask_dialogue_turn, dialogue_turn_ok
from genixer.world.scene import Scene

_TRIES = 20


class ReferentialDialogue(GroundingTask):
    name = "rd"
    kinds = RD_KINDS
    num_turns = (2, 3)

    def sample(self, scene: Scene, rng: random.Random) -> list[QA] | None:
        want = rng.randint(*self.num_turns)
        turns: list[QA] = []
        asked: set[str] = set()
        for _ in range(_TRIES):
            kind = rng.choice(RD_KINDS)
            made = ask_dialogue_turn(scene, rng, kind)
            if made is None or made[0] in asked:
                continue
            asked.add(made[0])
            turns.append(grounded_qa(made[0], made[1], kind))
            if len(turns) == want:
                return turns
        return turns if len(turns) >= self.num_turns[0] else None

    def parse(self, text: str) -> list[QA]:
        turns = [grounded_qa(q, a) for q, a in self._pairs(text)]
        for i, t in enumerate(turns):
            if not t.boxes:
                raise ParseError("no_box", f"turn {i + 1} grounds nothing")
        return turns

    def check_turn(self, scene: Scene, qa: QA) -> tuple[str, bool]:
        return dialogue_turn_ok(scene, qa.question, qa.answer)
