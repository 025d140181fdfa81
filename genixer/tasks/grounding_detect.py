"""Task-agnostic mode over the grounding tasks: which task a generation is, from its form.

Several pairs -> rd; "So the answer is" -> qcbox; "Describe the region" -> reg; candidate
boxes, a point, or a PointQA question -> pointqa; otherwise (typically "Where is ... in the
image?" with a box answer) -> rec. Use as ``AgnosticTask(members, detect=detect_grounding)``.
"""

from __future__ import annotations

from genixer.tasks.base import Task, count_questions, first_question
from genixer.tasks.pointqa import PointQA
from genixer.tasks.qcbox import FINAL, QCBox
from genixer.tasks.rd import ReferentialDialogue
from genixer.tasks.rec import REC
from genixer.tasks.reg import PREFIX as REG_PREFIX
from genixer.tasks.reg import REG
from genixer.world.pointing import CANDIDATES_MARK, classify_point


def detect_grounding(text: str) -> Task:
    if count_questions(text) > 1:
        return ReferentialDialogue()
    if FINAL in text:
        return QCBox()
    question = first_question(text)
    if question.startswith(REG_PREFIX):
        return REG()
    if CANDIDATES_MARK in question or classify_point(question) is not None:
        return PointQA()
    return REC()
