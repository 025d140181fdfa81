"""Multiple-choice VQA: a question, lettered options, the letter of the right one.

In the generator's text the answer is written content first, then its letter
(``Answer: blue (C)``): the generator states what it sees before mapping it to a letter,
which it can then copy from the option list; a letter that disagrees with the stated
content is a parse failure, not a silent error. Downstream conversations ask for the
letter alone, as the benchmarks do.
"""

from __future__ import annotations

import random
import re

from genixer.core.chat import Turn
from genixer.core.record import QA
from genixer.tasks.base import ANSWER_MARKER, QUESTION_MARKER, ParseError, Task, parse_pairs
from genixer.tasks.templates import MC_ANSWER_HINT
from genixer.world.questions import BY_NAME, OPEN_KINDS

MAX_OPTIONS = 4
_OPTIONS_START = re.compile(r"\sA\.\s")
_OPTION = re.compile(r"(?P<letter>[A-Z])\.\s+(?P<text>.+)")
_ANSWER = re.compile(r"(?:(?P<text>.+?)\s*\()?(?P<letter>[A-Z])\)?")


def letter(i: int) -> str:
    return chr(ord("A") + i)


def format_options(options: list[str]) -> str:
    return "\n".join(f"{letter(i)}. {o}" for i, o in enumerate(options))


class MultiChoiceVQA(Task):
    name = "mcvqa"
    kinds = OPEN_KINDS

    def _make_qa(self, question: str, answer: str, kind: str, rng: random.Random) -> QA:
        space = [a for a in BY_NAME[kind].answer_space if a != answer]
        if kind.startswith("count"):  # plausible counts only
            space = [a for a in space if int(a) <= 5]
        options = rng.sample(space, min(MAX_OPTIONS - 1, len(space))) + [answer]
        # Options in the answer space's own order (counts ascending, colours as listed):
        # a generator sampled at low temperature then cannot repeat an option.
        order = BY_NAME[kind].answer_space
        options.sort(key=order.index)
        return QA(question, letter(options.index(answer)), options=options, kind=kind)

    def serialize(self, turns: list[QA]) -> str:
        (t,) = turns
        content = t.answer_text()
        opts = format_options(t.options)
        return f"{QUESTION_MARKER} {t.question} {opts} {ANSWER_MARKER} {content} ({t.answer})"

    def parse(self, text: str) -> list[QA]:
        pairs = parse_pairs(text)
        if len(pairs) != 1:
            raise ParseError("wrong_turn_count", f"{len(pairs)} pairs for mcvqa")
        body, answer = pairs[0]
        m = _OPTIONS_START.search(body)
        if m is None:
            raise ParseError("no_options")
        question = body[: m.start()].strip()
        options = []
        for i, line in enumerate(body[m.start() :].strip().split("\n")):
            om = _OPTION.fullmatch(line.strip())
            if om is None or om.group("letter") != letter(i):
                raise ParseError("bad_option", line.strip()[:40])
            options.append(om.group("text").strip())
        if len(options) < 2:
            raise ParseError("too_few_options")
        if len(set(options)) != len(options):
            raise ParseError("duplicate_options")
        am = _ANSWER.fullmatch(answer.strip())
        if am is None or (am.group("text") is None) != (answer.strip() == am.group("letter")):
            raise ParseError("answer_not_a_letter", answer[:20])
        letter_ = am.group("letter")
        idx = ord(letter_) - ord("A")
        if idx >= len(options):
            raise ParseError("answer_out_of_range", letter_)
        if am.group("text") is not None and am.group("text").strip() != options[idx]:
            raise ParseError("answer_letter_mismatch", answer[:40])
        return [QA(question, letter_, options=options)]

    def conversation(self, turns: list[QA]) -> list[Turn]:
        (t,) = turns
        return [(f"{t.question}\n{format_options(t.options)}\n{MC_ANSWER_HINT}", t.answer)]

    def _answer_ok(self, qa: QA, truth: str) -> bool:
        # A well-formed item lists the true answer exactly once.
        return qa.options.count(truth) == 1 and super()._answer_ok(qa, truth)
