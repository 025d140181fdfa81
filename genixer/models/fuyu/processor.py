"""The Fuyu judge's inputs: its special tokens and :class:`JudgeProcessor`.

Token layout of one example (``P`` = ``|SPEAKER|``, one per image patch, ``N`` = ``|NEWLINE|``
at the end of every patch row, as Fuyu does)::

    P P P N P P P N P P P N <s> {prompt} <0x04> [{answer} </s>]

``<0x04>`` is Fuyu's "beginning of answer" token. The ``P`` positions get the patch
embeddings (``pixel_values`` of shape ``(batch, patches, patch*patch*3)``, scattered by the
model into the ``image_token_id`` positions). The answer and ``</s>`` are the only loss targets.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers import FuyuForCausalLM, PreTrainedTokenizerBase

from genixer.core.chat import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN

PATCH_TOKEN = "|SPEAKER|"
ROW_END_TOKEN = "|NEWLINE|"
ANSWER_TOKEN = "<0x04>"
YES = "Yes"
NO = "No"
IGNORE_INDEX = -100


def special_token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of a special token, refusing tokenizers that lack it."""
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or (idx == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(f"the tokenizer has no {token!r} token")
    return int(idx)


def first_known_token_id(tokenizer: PreTrainedTokenizerBase, tokens) -> int:
    """The id of the first of ``tokens`` the tokenizer has (padding only needs some id)."""
    vocab = tokenizer.get_vocab()
    for token in tokens:
        if token is not None and token in vocab:
            return int(vocab[token])
    raise ValueError(f"the tokenizer has none of {[t for t in tokens if t]}")


class JudgeProcessor:
    """(image, prompt[, answer]) -> Fuyu inputs; collate with left or right padding.

    Plain attributes only, so it pickles (DataLoader workers, ``ddp_spawn``). For a
    DataLoader use ``functools.partial(processor.collate, padding_side="right")``.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, image_size: int, patch_size: int):
        if image_size % patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.patch_id = special_token_id(tokenizer, PATCH_TOKEN)
        self.row_end_id = special_token_id(tokenizer, ROW_END_TOKEN)
        self.bos_id = special_token_id(tokenizer, BOS_TOKEN)
        # Fuyu-8B's own tokenizer ends text with |ENDOFTEXT| and has no <pad> (its processor
        # pads with id 0): take the tokenizer's declared tokens when the chat's are missing.
        self.eos_id = special_token_id(tokenizer, tokenizer.eos_token or EOS_TOKEN)
        self.pad_id = first_known_token_id(
            tokenizer, (PAD_TOKEN, tokenizer.pad_token, tokenizer.unk_token)
        )
        self.answer_id = special_token_id(tokenizer, ANSWER_TOKEN)
        # The scorer reads the first token of each answer; training answers are tokenized the
        # same way (on their own, no leading space), so they start with exactly these ids.
        self.yes_id = self._text_ids(YES)[0]
        self.no_id = self._text_ids(NO)[0]
        if self.yes_id == self.no_id:
            raise ValueError("'Yes' and 'No' must start with different tokens")
        self.yes_ids, self.no_ids = [self.yes_id], [self.no_id]  # genixer.models.judging

    @classmethod
    def for_model(
        cls, model: FuyuForCausalLM, tokenizer: PreTrainedTokenizerBase
    ) -> JudgeProcessor:
        """The processor matching a judge's image geometry."""
        return cls(tokenizer, model.config.image_size, model.config.patch_size)

    def _text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def image_patches(self, image: Image.Image) -> torch.Tensor:
        """RGB, scaled to fit the square keeping its aspect, padded bottom/right with black
        (Fuyu's layout), scaled to [-1, 1]; returns ``(patches, patch*patch*3)`` in row-major
        patch order, each patch flattened as (row, column, channel)."""
        image = image.convert("RGB")
        size = self.image_size
        scale = size / max(image.size)
        if image.size != (size, size):
            w, h = (max(1, round(d * scale)) for d in image.size)
            image = image.resize((min(w, size), min(h, size)), Image.BICUBIC)
        canvas = Image.new("RGB", (size, size), (0, 0, 0))
        canvas.paste(image, (0, 0))
        pixels = torch.from_numpy(np.asarray(canvas, dtype=np.float32)) / 127.5 - 1.0  # H, W, C
        g, p = self.grid, self.patch_size
        patches = pixels.reshape(g, p, g, p, 3).permute(0, 2, 1, 3, 4)  # rows, cols, p, p, C
        return patches.reshape(g * g, p * p * 3)

    def image_token_ids(self) -> list[int]:
        """The placeholder ids: one patch token per patch, a row-end token after each row."""
        return ([self.patch_id] * self.grid + [self.row_end_id]) * self.grid

    def encode(
        self, image: Image.Image, prompt: str, answer: str | None = None
    ) -> dict[str, torch.Tensor]:
        """One example. With ``answer`` the result has ``labels`` on the answer + ``</s>`` only."""
        if answer is not None:
            return self.encode_turns(image, [(prompt, answer)])
        ids = [*self.image_token_ids(), self.bos_id, *self._prompt_ids(prompt)]
        return {"pixel_values": self.image_patches(image), "input_ids": torch.tensor(ids)}

    def encode_prompt(self, image: Image.Image, prompt: str) -> dict[str, torch.Tensor]:
        """A prompt ready for its first answer token (genixer.models.judging)."""
        return self.encode(image, prompt)

    def encode_turns(
        self, image: Image.Image, turns: list[tuple[str, str]]
    ) -> dict[str, torch.Tensor]:
        """A training sequence of one or more answered prompts about one image,
        ``<s> {p1} <0x04> {a1} </s> {p2} <0x04> {a2} </s> ...``, labels on every answer and
        its ``</s>``. One turn is exactly what :meth:`encode` gives with an answer; several
        turns are dense VQA supervision (the judge learns to see from them)."""
        if not turns:
            raise ValueError("a judge example needs at least one turn")
        ids = [*self.image_token_ids(), self.bos_id]
        labels = [IGNORE_INDEX] * len(ids)
        for prompt, answer in turns:
            prompt_ids = self._prompt_ids(prompt)
            target = [*self._text_ids(answer), self.eos_id]
            ids += prompt_ids + target
            labels += [IGNORE_INDEX] * len(prompt_ids) + target
        return {
            "pixel_values": self.image_patches(image),
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
        }

    def _prompt_ids(self, prompt: str) -> list[int]:
        """A prompt's ids up to and including the beginning-of-answer token."""
        ids = self._text_ids(prompt)
        if self.patch_id in ids:
            raise ValueError(f"the prompt must not contain {PATCH_TOKEN}")
        return [*ids, self.answer_id]

    def collate(
        self, items: list[dict[str, torch.Tensor]], padding_side: str = "left"
    ) -> dict[str, torch.Tensor]:
        """Pad encoded examples into a batch whose keys ``FuyuForCausalLM.forward`` accepts.

        Position ids count real tokens only, so an example gets the same positions (and the
        same scores) whatever the padding around it. Use left padding for scoring/generation.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        with_labels = {"labels" in item for item in items}
        if len(with_labels) != 1:
            raise ValueError("either every example has labels or none has")
        width = max(len(item["input_ids"]) for item in items)
        batch: dict[str, list[torch.Tensor]] = {"input_ids": [], "attention_mask": []}
        if True in with_labels:
            batch["labels"] = []

        def pad(t: torch.Tensor, value: int) -> torch.Tensor:
            fill = torch.full((width - len(t),), value, dtype=t.dtype)
            return torch.cat([fill, t] if padding_side == "left" else [t, fill])

        for item in items:
            batch["input_ids"].append(pad(item["input_ids"], self.pad_id))
            batch["attention_mask"].append(pad(torch.ones_like(item["input_ids"]), 0))
            if "labels" in batch:
                batch["labels"].append(pad(item["labels"], IGNORE_INDEX))
        out = {key: torch.stack(values) for key, values in batch.items()}
        out["position_ids"] = (out["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        out["pixel_values"] = torch.stack([item["pixel_values"] for item in items])
        return out
