"""The one conversation format shared by every model in the project.

A conversation is a list of turns ``(user_text, assistant_text)``; the first user turn
carries the image. The format is Vicuna-v1 style, which LLaVA-1.5 and Shikra use:
``USER: <image>\\n{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT: {a2}</s>``.
"""

from __future__ import annotations

IMAGE_TOKEN = "<image>"
EOS_TOKEN = "</s>"
BOS_TOKEN = "<s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
USER = "USER:"
ASSISTANT = "ASSISTANT:"

Turn = tuple[str, str | None]


def segments(turns: list[Turn]) -> list[tuple[str, bool]]:
    """Split a conversation into ``(text, is_target)`` pieces.

    Targets are the assistant answers plus their end-of-sequence token: the loss is computed
    on them only. A final turn whose answer is ``None`` ends with ``ASSISTANT:`` (a prompt
    for generation).
    """
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    out: list[tuple[str, bool]] = []
    for i, (user, answer) in enumerate(turns):
        prefix = f"{IMAGE_TOKEN}\n" if i == 0 else ""
        out.append((f"{USER} {prefix}{user} {ASSISTANT}", False))
        if answer is None:
            if i != len(turns) - 1:
                raise ValueError("only the last turn may be left unanswered")
            break
        out.append((f" {answer}{EOS_TOKEN}", True))
    return out


def prompt(turns: list[Turn]) -> str:
    """The whole conversation as one string (no loss mask)."""
    return "".join(text for text, _ in segments(turns))
