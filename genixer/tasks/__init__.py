"""The 9 tasks, one module each, and the task-agnostic mode."""

from __future__ import annotations

from genixer.tasks.adv import AdvVQA
from genixer.tasks.base import ParseError, Task
from genixer.tasks.common import CommonVQA
from genixer.tasks.generic import AgnosticTask
from genixer.tasks.grounding_detect import detect_grounding
from genixer.tasks.mcvqa import MultiChoiceVQA
from genixer.tasks.md import MultiTurnDialogue
from genixer.tasks.pointqa import PointQA
from genixer.tasks.qcbox import QCBox
from genixer.tasks.rd import ReferentialDialogue
from genixer.tasks.rec import REC
from genixer.tasks.reg import REG

TASKS: dict[str, type[Task]] = {
    "common": CommonVQA,
    "adv": AdvVQA,
    "mcvqa": MultiChoiceVQA,
    "md": MultiTurnDialogue,
    "rec": REC,
    "reg": REG,
    "pointqa": PointQA,
    "qcbox": QCBox,
    "rd": ReferentialDialogue,
}
GENERIC_TASKS = ("common", "adv", "mcvqa", "md")
GROUNDING_TASKS = ("rec", "reg", "pointqa", "qcbox", "rd")


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None


__all__ = [
    "GENERIC_TASKS",
    "GROUNDING_TASKS",
    "TASKS",
    "AgnosticTask",
    "ParseError",
    "Task",
    "detect_grounding",
    "get_task",
]
