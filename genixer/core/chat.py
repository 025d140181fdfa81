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


class ConversationError(ValueError):
    """A LLaVA-format conversation that cannot be used; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def llava_turns(conversations: object) -> list[tuple[str, str]]:
    """``(human, gpt)`` turns of a LLaVA training entry's ``conversations`` (the ``<image>``
    placeholder removed from the questions); :class:`ConversationError` when they do not
    alternate human, gpt, ... or a value is not text."""
    if not isinstance(conversations, list) or len(conversations) < 2:
        raise ConversationError("no_turns")
    if len(conversations) % 2:
        raise ConversationError("bad_roles", f"{len(conversations)} messages (odd)")
    turns = []
    for h, g in zip(conversations[0::2], conversations[1::2], strict=True):
        if not isinstance(h, dict) or not isinstance(g, dict):
            raise ConversationError("bad_message", "a message is not an object")
        if h.get("from") != "human" or g.get("from") != "gpt":
            raise ConversationError("bad_roles", f"{h.get('from')}, {g.get('from')}")
        q, a = h.get("value"), g.get("value")
        if not isinstance(q, str) or not isinstance(a, str):
            raise ConversationError("bad_value", "a message's value is not text")
        q = q.replace(f"{IMAGE_TOKEN}\n", "").replace(IMAGE_TOKEN, "").strip()
        if not q or not a.strip():
            raise ConversationError("empty_text")
        turns.append((q, a))
    return turns
