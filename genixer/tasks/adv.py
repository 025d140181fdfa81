"""Adversarial VQA (POPE-like): yes/no existence with near-miss absent objects."""

from genixer.core.record import QA
from genixer.tasks.base import ParseError, Task
from genixer.world.questions import EXISTENCE


class AdvVQA(Task):
    name = "adv"
    kinds = EXISTENCE

    def parse(self, text: str) -> list[QA]:
        turns = super().parse(text)
        if turns[0].answer.lower() not in ("yes", "no"):
            raise ParseError("not_yes_no", turns[0].answer)
        return turns
