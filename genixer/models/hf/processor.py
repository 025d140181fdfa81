"""The project's conversations through a Hugging Face processor and its chat template.

:class:`HfChatProcessor` gives any ``AutoProcessor`` with a chat template the interface the
project's own :class:`~genixer.models.processor.ChatProcessor` has (``encode``, ``collate``,
``decode``, ``eos_id`` / ``pad_id`` / ``bos_id``, ``tokenizer``), so training, seeded
generation and judging run on it unchanged.

The loss mask comes from the template itself: the assistant's span of turn ``k`` is what the
rendered conversation gains between "the first ``k`` turns plus the generation prompt" and
"the first ``k`` turns with turn ``k``'s answer". Each prefix is put through the processor
(image tokens expanded as the family does it) and compared token by token with the whole
conversation, so a tokenizer that merges across the boundary moves the merged token to the
answer's side instead of breaking the mask. No family's markers are written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from genixer.core.chat import Turn
from genixer.models.processor import IGNORE_INDEX, check_batch

# Batch keys laid out along the token sequence (padded like input_ids); every other tensor
# is per image and is concatenated along its first dimension.
SEQUENCE_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
# The spellings of the judge's verdicts whose single-token forms P(Yes) / P(No) sum over.
YES_FORMS = ("Yes", "yes", " Yes", " yes", "YES", " YES")
NO_FORMS = ("No", "no", " No", " no", "NO", " NO")


def messages(turns: Sequence[Turn]) -> list[dict]:
    """Turns as chat-template messages, the image first in the first user message. Content
    is always a list of typed parts: the form every vision-language template reads."""
    out: list[dict] = []
    for i, (question, answer) in enumerate(turns):
        parts = [{"type": "image"}] if i == 0 else []
        out.append({"role": "user", "content": [*parts, {"type": "text", "text": question}]})
        if answer is not None:
            out.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class HfChatProcessor:
    """``(image, turns)`` -> model inputs with an assistant-only loss mask, for any
    image-text-to-text processor with a chat template.

    Args:
        processor: the folder's ``AutoProcessor`` (must have ``chat_template``).
        max_length: longest allowed sequence (image tokens included); longer ones raise.
    """

    def __init__(self, processor: Any, max_length: int = 2048) -> None:
        if not getattr(processor, "chat_template", None):
            raise ValueError("the processor has no chat template")
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = int(max_length)
        self.eos_id = self._end_of_turn()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_id)
        bos = self.tokenizer.bos_token_id
        self.bos_id = int(bos) if bos is not None else None
        self.yes_ids = self._single_tokens(YES_FORMS)
        self.no_ids = self._single_tokens(NO_FORMS)

    # ------------------------------------------------------------------ template facts
    def render(self, turns: Sequence[Turn], generation: bool) -> str:
        return self.processor.apply_chat_template(
            messages(turns), add_generation_prompt=generation, tokenize=False
        )

    def _end_of_turn(self) -> int:
        """The token the template writes right after an answer: where generation stops."""
        probe = "0"
        prompt = self.render([("q", None)], generation=True)
        whole = self.render([("q", probe)], generation=False)
        if not whole.startswith(prompt):
            raise ValueError(
                "the chat template does not extend the generation prompt with the answer; "
                "the assistant span cannot be found from it"
            )
        tail = whole[len(prompt) :]
        tail = tail[tail.index(probe) + len(probe) :]
        ids = self.tokenizer.encode(tail, add_special_tokens=False)
        if not ids:
            eos = self.tokenizer.eos_token_id
            if eos is None:
                raise ValueError("the chat template ends answers with nothing and there is no eos")
            return int(eos)
        return int(ids[0])

    def _single_tokens(self, forms: Sequence[str]) -> list[int]:
        ids = set()
        for form in forms:
            tokens = self.tokenizer.encode(form, add_special_tokens=False)
            if len(tokens) == 1:
                ids.add(int(tokens[0]))
        return sorted(ids)

    # ------------------------------------------------------------------ encoding
    def _process(self, image: Image.Image, text: str) -> dict[str, torch.Tensor]:
        return dict(self.processor(text=[text], images=[image], return_tensors="pt", padding=False))

    def encode(self, image: Image.Image, turns: list[Turn], generation: bool = False) -> dict:
        """One conversation with its image -> the processor's tensors for one row (batch
        dim 1) plus ``labels`` (``-100`` except on the answers and their end-of-turn
        tokens) unless ``generation``, which needs the last answer ``None``."""
        unanswered = turns[-1][1] is None if turns else False
        if generation != unanswered:
            raise ValueError(
                "generation=True needs the last turn's answer to be None"
                if generation
                else "a training example needs every answer; use generation=True"
            )
        item = self._process(image, self.render(turns, generation))
        ids = item["input_ids"][0].tolist()
        if len(ids) > self.max_length:
            raise ValueError(
                f"sequence of {len(ids)} tokens is longer than max_length={self.max_length}; "
                "raise max_length or shorten the conversation (truncation would drop answers)"
            )
        if not generation:
            item["labels"] = torch.tensor([self._labels(image, turns, ids)])
        return item

    def _labels(self, image: Image.Image, turns: list[Turn], ids: list[int]) -> list[int]:
        labels = [IGNORE_INDEX] * len(ids)
        for k in range(len(turns)):
            asked = turns[:k] + [(turns[k][0], None)]
            start = self._common_prefix_length(image, asked, True, ids)
            end = self._common_prefix_length(image, turns[: k + 1], False, ids)
            labels[start:end] = ids[start:end]
        return labels

    def _common_prefix_length(self, image, turns, generation: bool, ids: list[int]) -> int:
        prefix = self._process(image, self.render(turns, generation))["input_ids"][0].tolist()
        return _common_prefix(prefix, ids)

    def encode_prompt(self, image: Image.Image, prompt: str) -> dict:
        """A single question ready for its first answer token (the judge's P(Yes))."""
        return self.encode(image, [(prompt, None)], generation=True)

    # ------------------------------------------------------------------ batching
    def collate(self, items: list[dict], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad the rows' sequences (``left`` for generation) and concatenate their image
        tensors; ``labels`` only when every item has them."""
        check_batch(items, padding_side)  # labels travel as a key like the others
        width = max(it["input_ids"].shape[1] for it in items)
        pads = {"input_ids": self.pad_id, "labels": IGNORE_INDEX}
        batch = {}
        for key in items[0]:
            if key in SEQUENCE_KEYS or key == "labels":
                rows = [_pad_row(it[key][0], width, pads.get(key, 0), padding_side) for it in items]
                batch[key] = torch.stack(rows)
            else:
                batch[key] = _concat_padded([it[key] for it in items])
        return batch

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def _pad_row(row: torch.Tensor, width: int, value: int, side: str) -> torch.Tensor:
    fill = torch.full((width - row.shape[0],), value, dtype=row.dtype)
    return torch.cat([fill, row] if side == "left" else [row, fill])


def _concat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along dim 0, zero-padding trailing dims that differ (e.g. a different
    number of image crops per row; the model reads the real count from its size keys)."""
    shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    padded = []
    for t in tensors:
        pad: list[int] = []
        for d in reversed(range(1, t.dim())):
            pad += [0, shape[d - 1] - t.shape[d]]
        padded.append(torch.nn.functional.pad(t, pad) if any(pad) else t)
    return torch.cat(padded)
