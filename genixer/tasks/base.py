"""What every task does, and the ``Question: ... Answer: ...`` text format they share.

A task turns a labeled sample (a list of :class:`QA`) into a generator target text and back,
into a downstream conversation and into judge prompts, and checks a sample against a scene.
"""

from __future__ import annotations

import random
import re

from genixer.core.chat import Turn
from genixer.core.record import QA
from genixer.core.text import normalize_answer
from genixer.tasks.templates import JUDGE_PROMPT
from genixer.world.questions import BY_NAME, classify
from genixer.world.scene import Scene

QUESTION_MARKER = "Question:"
ANSWER_MARKER = "Answer:"
_Q, _A = re.escape(QUESTION_MARKER), re.escape(ANSWER_MARKER)
_PAIR_RE = re.compile(rf"{_Q}(?P<q>.*?){_A}(?P<a>.*?)(?={_Q}|\Z)", re.DOTALL)


class ParseError(ValueError):
    """A generation that is not a valid sample of its task; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def format_pair(question: str, answer: str) -> str:
    answer = answer.strip()
    end = "" if answer.endswith((".", "?", "!")) else "."
    return f"{QUESTION_MARKER} {question.strip()} {ANSWER_MARKER} {answer}{end}"


def count_questions(text: str) -> int:
    return text.count(QUESTION_MARKER)


def first_question(text: str) -> str:
    """The question of a generation's first pair, loosely read (telling tasks apart)."""
    return text.split(ANSWER_MARKER)[0].replace(QUESTION_MARKER, "").strip()


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """All ``(question, answer)`` pairs; raises ParseError with a reason when malformed."""
    text = text.strip()
    if not text:
        raise ParseError("empty")
    if not text.startswith(QUESTION_MARKER):
        raise ParseError("no_question_marker", text[:40])
    pairs = []
    for m in _PAIR_RE.finditer(text):
        q, a = m.group("q").strip(), m.group("a").strip()
        if not q:
            raise ParseError("empty_question")
        if a.endswith("."):
            a = a[:-1].strip()
        if not a:
            raise ParseError("empty_answer")
        pairs.append((q, a))
    if not pairs:
        raise ParseError("no_answer_marker", text[:40])
    if count_questions(text) != len(pairs):
        raise ParseError("no_answer_marker", "a question without an answer")
    return pairs


def judge_prompt(qa: QA) -> str:
    return JUDGE_PROMPT.format(question=qa.question, answer=qa.answer_text())


class Task:
    """Base for the QA-style tasks; subclasses set ``name``, ``kinds`` and ``turns``."""

    name: str = ""
    group: str = "generic"
    kinds: tuple[str, ...] = ()
    num_turns: tuple[int, int] = (1, 1)  # min, max QA pairs in one sample

    # --- ground truth -> sample (the built-in world) ---
    def sample(self, scene: Scene, rng: random.Random) -> list[QA] | None:
        kinds = list(self.kinds)
        rng.shuffle(kinds)
        want = rng.randint(*self.num_turns)
        turns: list[QA] = []
        for name in kinds:
            asked = BY_NAME[name].ask(scene, rng)
            if asked is not None:
                turns.append(self._make_qa(asked[0], asked[1], name, rng))
            if len(turns) == want:
                return turns
        return None

    def _make_qa(self, question: str, answer: str, kind: str, rng: random.Random) -> QA:
        return QA(question, answer, kind=kind)

    # --- sample <-> generator text ---
    def serialize(self, turns: list[QA]) -> str:
        return "\n".join(format_pair(t.question, t.answer) for t in turns)

    def parse(self, text: str) -> list[QA]:
        pairs = parse_pairs(text)
        lo, hi = self.num_turns
        if not lo <= len(pairs) <= hi:
            raise ParseError("wrong_turn_count", f"{len(pairs)} pairs for {self.name}")
        return [QA(q, a) for q, a in pairs]

    # --- sample -> downstream conversation and judge prompts ---
    def conversation(self, turns: list[QA]) -> list[Turn]:
        return [(t.question, t.answer) for t in turns]

    def judge_prompts(self, turns: list[QA]) -> list[str]:
        return [judge_prompt(t) for t in turns]

    # --- the oracle ---
    def check(self, scene: Scene, turns: list[QA]) -> bool:
        """True iff every pair is a question of the world with a single true answer in this
        scene and the sample's answer is it. Fills in each pair's ``kind``."""
        return self.oracle_error(scene, turns) is None

    def oracle_error(self, scene: Scene, turns: list[QA]) -> str | None:
        """Why the sample is not true of the scene (its first false pair's reason), or None
        when it is: ``unknown_question`` (not a question the world knows),
        ``no_single_answer`` ("What color is the circle?" with two circles), or
        ``wrong_answer``. Fills in each pair's ``kind``."""
        error = None
        for t in turns:
            found = classify(t.question)
            t.kind = found[0].name if found else "unknown"
            truth = found[0].truth(scene, found[1]) if found else None
            if found is None:
                reason = "unknown_question"
            elif truth is None:
                reason = "no_single_answer"
            else:
                reason = None if self._answer_ok(t, truth) else "wrong_answer"
            error = error or reason
        return error

    def _answer_ok(self, qa: QA, truth: str) -> bool:
        return normalize_answer(qa.answer_text()) == normalize_answer(truth)
