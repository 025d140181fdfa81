"""Common VQA: one open question about counts, colours, shapes or positions."""

from genixer.tasks.base import Task
from genixer.world.questions import OPEN_KINDS


class CommonVQA(Task):
    name = "common"
    kinds = OPEN_KINDS
