"""Task-agnostic mode: a generic instruction only; the generator picks the task itself.

Parsing tells which task a generation is from its form: several pairs -> md, lettered
options -> mcvqa, a yes/no existence question -> adv, otherwise common.
"""

from __future__ import annotations

from genixer.core.record import QA
from genixer.tasks.adv import AdvVQA
from genixer.tasks.base import ParseError, Task, count_questions, first_question
from genixer.tasks.common import CommonVQA
from genixer.tasks.mcvqa import MultiChoiceVQA
from genixer.tasks.md import MultiTurnDialogue
from genixer.world.questions import EXISTENCE, classify


def detect_generic(text: str) -> Task:
    if count_questions(text) > 1:
        return MultiTurnDialogue()
    if "\nB." in text or " A. " in text:
        return MultiChoiceVQA()
    q = first_question(text)
    found = classify(q)
    if found is not None and found[0].name in EXISTENCE:
        return AdvVQA()
    if q.startswith(("Is ", "Are ", "Does ", "Do ")):
        return AdvVQA()
    return CommonVQA()


class AgnosticTask:
    """Not a task of its own: the set of member tasks and how to tell them apart."""

    name = "generic"

    def __init__(self, members: list[str], detect=detect_generic) -> None:
        self.members = members
        self.detect = detect

    def parse(self, text: str) -> tuple[Task, list[QA]]:
        task = self.detect(text)
        if task.name not in self.members:
            raise ParseError("task_not_in_mode", task.name)
        return task, task.parse(text)
