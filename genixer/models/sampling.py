"""What both seeded samplers share: the rounding of log-probabilities, the per-phase
temperatures (:class:`Phases`), their arguments and the ones they refuse."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

LOGPROB_DECIMALS = 4


class Phases:
    """Which rows are about to write the first word of a question.

    A row has just written a question marker (a token id sequence, e.g. ``Question:``)
    when its generated ids end with one; its next token is the question's first word,
    which in the built-in world's question bank decides the kind of question. Sampling that
    one token at ``question_temperature`` and everything else at the answer temperature
    lets a generator choose what to ask as its training data taught it, while its words
    and answers stay its best guess (a low temperature sharpens the choice of kind too,
    and the generator collapses onto the kind it favours).
    """

    def __init__(self, question_temperature: float, question_markers: list[list[int]]) -> None:
        if not question_markers or not all(question_markers):
            raise ValueError("Phases needs at least one non-empty question marker")
        self.question_temperature = float(question_temperature)
        self.question_markers = [list(m) for m in question_markers]

    def at_question_start(self, row: list[int]) -> bool:
        return any(
            len(row) >= len(m) and row[len(row) - len(m) :] == m for m in self.question_markers
        )

    def starts(self, input_ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """:meth:`at_question_start` for every row at once, on ``input_ids``'s device (a
        bool per row; no copy to the host). The generated part is what follows the
        ``prompt_len`` columns of the left-padded prompt, the same length in every row."""
        new = input_ids.shape[1] - prompt_len
        hit = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for m in self.question_markers:
            if len(m) <= new:
                marker = torch.tensor(m, dtype=input_ids.dtype, device=input_ids.device)
                hit |= (input_ids[:, -len(m) :] == marker).all(dim=1)
        return hit


def check_sampling(temperature: float, top_p: float | None, phases: Phases | None) -> None:
    """The arguments both seeded samplers refuse."""
    if temperature < 0 or (phases is not None and phases.question_temperature < 0):
        raise ValueError("temperatures must be >= 0")
    if temperature == 0 and phases is None:
        raise ValueError("a seeded sampler needs temperature > 0 (use greedy for 0)")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError("top_p must be in (0, 1]")


class SeededProcessor(LogitsProcessor):
    """The arguments of a seeded sampler (see :class:`~genixer.models.generation.SeededSampler`
    for their meaning), checked and kept; subclasses draw the numbers."""

    def __init__(
        self,
        seeds: Sequence[int],
        temperature: float,
        top_p: float | None = None,
        decimals: int = LOGPROB_DECIMALS,
        phases: Phases | None = None,
    ) -> None:
        check_sampling(temperature, top_p, phases)
        self.seeds = [int(s) for s in seeds]
        self.temperature = float(temperature)
        self.top_p = top_p
        self.scale = 10.0**decimals
        self.phases = phases
        self.prompt_len: int | None = None

    def check_rows(self, scores: torch.Tensor) -> None:
        if scores.shape[0] != len(self.seeds):
            raise ValueError(f"{scores.shape[0]} rows but {len(self.seeds)} seeds")
