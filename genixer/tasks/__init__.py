"""The 9 tasks, one module each, and the task-agnostic mode."""

from __future__ import annotations

from genixer.tasks.adv import AdvVQA
from genixer.tasks.base import ParseError, Task
from genixer.tasks.common import CommonVQA
from genixer.tasks.generic import AgnosticTask
from genixer.tasks.mcvqa import MultiChoiceVQA
from genixer.tasks.md import MultiTurnDialogue

TASKS: dict[str, type[Task]] = {
    "common": CommonVQA,
    "adv": AdvVQA,
    "mcvqa": MultiChoiceVQA,
    "md": MultiTurnDialogue,
}
GENERIC_TASKS = ("common", "adv", "mcvqa", "md")


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None


__all__ = ["GENERIC_TASKS", "TASKS", "AgnosticTask", "ParseError", "Task", "get_task"]
