"""Position ids that restart at every question (opt-in: ``position_restart: true`` in a
LLaVA-architecture model spec).

A tiny language model finds an image cell only by its rotary distance from the question: it
does not read the cell from the tower's features, even when every patch carries an explicit
cell code (README, "Not even an explicit cell code is read"). A conversation, an instruction
or a generator's own ``Question:`` moves that distance from turn to turn. With restarts, the
tokens from each question marker on (a later ``USER:`` turn, or ``Question:`` in a
generator's output) take the position ids that the conversation's first question has, so
every question sees the image at one distance. Earlier turns keep their tokens, at
overlapping positions. Measured, one run each (README): a conversation base with
``plain_repeat={object_at: 3}`` answered ``object_at`` at 0.96 (0.56-0.71 without), while
counting and existence fell.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genixer.chat import USER
from genixer.tasks.base import QUESTION_MARKER


def marker_ids(tokenizer) -> list[list[int]]:
    """The token sequences a question starts with: a later user turn (``USER:`` right after
    ``</s>``) and the ``Question:`` marker, at a line start or after a space."""
    texts = (USER, QUESTION_MARKER, f" {QUESTION_MARKER}")
    out: list[list[int]] = []
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if ids and ids not in out:
            out.append(ids)
    return out


def restart_position_ids(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    image_token_id: int,
    markers: Sequence[Sequence[int]],
) -> torch.Tensor:
    """``(batch, length)`` position ids: padding-aware counts (left or right padding), except
    that from each marker after a row's image on, ids restart so that the token right after
    the marker gets the id of the first token after the image and its newline. Rows without
    an image keep plain counts."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0).cpu()
    markers = [list(m) for m in markers]  # compared with row slices (lists) below
    rows = input_ids.tolist()
    for r, row in enumerate(rows):
        images = [i for i, t in enumerate(row) if t == image_token_id]
        if not images:
            continue
        anchor = int(positions[r, images[-1]]) + 2  # after the image tokens and "\n"
        starts: list[tuple[int, int]] = []  # (index, marker length)
        i = images[-1] + 1
        while i < len(row):
            hit = next((m for m in markers if row[i : i + len(m)] == m), None)
            if hit is not None:
                starts.append((i, len(hit)))
                i += len(hit)
            else:
                i += 1
        ends = [s for s, _ in starts[1:]] + [len(row)] if starts else []
        for (start, n), end in zip(starts, ends, strict=True):
            positions[r, start:end] = anchor - n + torch.arange(end - start)
    return positions.to(input_ids.device)
