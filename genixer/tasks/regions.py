"""The (box, expression) pair a grounding record states: what a CLIP filter compares and
what Shikra's REC export writes."""

from __future__ import annotations

from genixer.core.boxes import BoxParseError, find_brackets, parse_box
from genixer.core.record import Record
from genixer.tasks.rec import QUESTION_RE
from genixer.tasks.reg import PREFIX as REG_PREFIX


def box_and_text(rec: Record) -> tuple[tuple[float, ...], str] | None:
    """What CLIP should compare for a record, or None when its task has no single
    (box, expression) pair (PointQA, reasoning, dialogue)."""
    qa = rec.turns[0]
    try:
        if rec.task == "rec":
            m = QUESTION_RE.fullmatch(qa.question.strip())
            found = find_brackets(qa.answer)
            if m and len(found) == 1:
                return parse_box(found[0][2]), m.group("expression")
        elif rec.task == "reg" and qa.question.startswith(REG_PREFIX):
            found = find_brackets(qa.question)
            if len(found) == 1:
                return parse_box(found[0][2]), qa.answer
    except BoxParseError:
        return None
    return None
