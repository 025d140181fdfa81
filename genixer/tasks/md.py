"""Multi-turn dialogue: several question-answer pairs about one image in one response."""

from genixer.tasks.base import Task
from genixer.world.questions import OPEN_KINDS


class MultiTurnDialogue(Task):
    name = "md"
    kinds = OPEN_KINDS
    num_turns = (2, 3)
