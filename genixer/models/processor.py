"""Images and conversations -> model inputs, for every LLaVA-style model of the project.

One image per conversation. The text is the chat format of :mod:`genixer.core.chat`; its single
``<image>`` token is expanded to ``num_image_tokens`` copies, one per visual feature, which
is what transformers' ``LlavaForConditionalGeneration`` replaces with projected features.
Loss labels are ``-100`` everywhere except on the assistant answers (and their ``</s>``).

The class holds no closures or lambdas so it pickles: DataLoader workers and ``ddp_spawn``
need that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from genixer.core.chat import BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN, Turn, segments

IGNORE_INDEX = -100


def check_batch(items: list[dict], padding_side: str) -> bool:
    """Refuse a batch no processor can collate; True when its items carry labels (all of
    them: a mix raises)."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    has_labels = ["labels" in it for it in items]
    if any(has_labels) and not all(has_labels):
        raise ValueError("either all items have labels or none")
    return all(has_labels)


class ChatProcessor:
    """Turn ``(image, turns)`` into token ids, loss labels and a normalized pixel tensor.

    Args:
        tokenizer: the project tokenizer (must know the chat special tokens).
        image_size: side of the square image the vision tower sees.
        num_image_tokens: how many ``<image>`` ids one image becomes.
        image_mean, image_std: per-channel normalization (in [0, 1] units).
        pad_to_square: LLaVA-1.5's "pad" aspect mode: pad the short side with the mean colour
            (image centred) before resizing, so nothing is cropped and a box normalized to the
            padded square is easy to map back. When False the image is stretched to a square
            (normalized box coordinates stay valid in the original frame).
        max_length: longest allowed sequence (image tokens included); longer ones raise.
        image_start, image_end: optional tokens written right before / after the image's
            patch tokens (Shikra's ``<im_start>`` / ``<im_end>``); they are context, not targets.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        image_size: int,
        num_image_tokens: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        pad_to_square: bool = True,
        max_length: int = 512,
        image_start: str | None = None,
        image_end: str | None = None,
    ) -> None:
        if len(image_mean) != 3 or len(image_std) != 3:
            raise ValueError("image_mean and image_std need one value per RGB channel")
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.num_image_tokens = int(num_image_tokens)
        self.image_mean = tuple(float(m) for m in image_mean)
        self.image_std = tuple(float(s) for s in image_std)
        self.pad_to_square = bool(pad_to_square)
        self.max_length = int(max_length)
        ids = tokenizer.convert_tokens_to_ids([BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, IMAGE_TOKEN])
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ValueError("the tokenizer lacks one of the chat special tokens")
        self.bos_id, self.eos_id, self.pad_id, self.image_token_id = (int(i) for i in ids)
        self.image_start = image_start
        self.image_end = image_end
        wrap = [tokenizer.convert_tokens_to_ids(t) for t in (image_start, image_end) if t]
        if any(i is None or i == tokenizer.unk_token_id for i in wrap):
            raise ValueError(f"the tokenizer lacks {image_start!r} or {image_end!r}")
        self._image_ids = [
            *([int(wrap[0])] if image_start else []),
            *[self.image_token_id] * self.num_image_tokens,
            *([int(wrap[-1])] if image_end else []),
        ]

    # ----------------------------------------------------------------- images
    def pixels(self, img: Image.Image) -> torch.Tensor:
        """A PIL image -> normalized ``float32`` tensor ``[3, image_size, image_size]``."""
        img = img.convert("RGB")
        if self.pad_to_square and img.width != img.height:
            side = max(img.width, img.height)
            fill = tuple(int(round(m * 255)) for m in self.image_mean)
            square = Image.new("RGB", (side, side), fill)
            square.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
            img = square
        if img.size != (self.image_size, self.image_size):
            img = img.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        x = torch.from_numpy(arr).permute(2, 0, 1)
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        return (x - mean) / std

    def _pixel_values(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(image, torch.Tensor):  # already processed (e.g. cached)
            expected = (3, self.image_size, self.image_size)
            if tuple(image.shape) != expected:
                raise ValueError(
                    f"pixel tensor has shape {tuple(image.shape)}, expected {expected}"
                )
            return image
        return self.pixels(image)

    # ------------------------------------------------------------------- text
    def encode(
        self,
        image: Image.Image | torch.Tensor,
        turns: list[Turn],
        generation: bool = False,
    ) -> dict[str, Any]:
        """Encode one conversation with its image.

        Returns ``input_ids`` (``<s>`` first), ``pixel_values`` and, unless ``generation``,
        ``labels`` (``-100`` except on assistant answers). With ``generation=True`` the last
        turn's answer must be ``None`` and the ids end right after ``ASSISTANT:``.

        Raises ``ValueError`` when the sequence is longer than ``max_length``: cutting it
        would silently drop answer tokens.
        """
        unanswered = turns[-1][1] is None if turns else False
        if generation and not unanswered:
            raise ValueError("generation=True needs the last turn's answer to be None")
        if not generation and unanswered:
            raise ValueError("a training example needs every answer; use generation=True")
        input_ids = [self.bos_id]
        labels = [IGNORE_INDEX]  # <s> is context, never a target
        n_image = 0
        for text, is_target in segments(turns):
            piece: list[int] = []
            for tid in self.tokenizer.encode(text, add_special_tokens=False):
                if tid == self.image_token_id:
                    n_image += 1
                    piece.extend(self._image_ids)
                else:
                    piece.append(tid)
            input_ids.extend(piece)
            labels.extend(piece if is_target else [IGNORE_INDEX] * len(piece))
        if n_image != 1:
            raise ValueError(
                f"expected exactly one {IMAGE_TOKEN} in the conversation, got {n_image}"
            )
        if len(input_ids) > self.max_length:
            raise ValueError(
                f"sequence of {len(input_ids)} tokens ({self.num_image_tokens} image tokens) is "
                f"longer than max_length={self.max_length}; raise max_length or shorten the "
                "conversation (truncation would drop answer tokens)"
            )
        out: dict[str, Any] = {"input_ids": input_ids, "pixel_values": self._pixel_values(image)}
        if not generation:
            out["labels"] = labels
        return out

    def collate(
        self, items: list[dict[str, Any]], padding_side: str = "right"
    ) -> dict[str, torch.Tensor]:
        """Pad encoded items into a batch.

        ``padding_side="left"`` is for generation (every row ends at its last prompt token).
        ``labels`` is in the batch only when the items have labels (all or none of them).
        """
        labelled = check_batch(items, padding_side)
        width = max(len(it["input_ids"]) for it in items)
        n = len(items)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long) if labelled else None
        for row, it in enumerate(items):
            length = len(it["input_ids"])
            span = slice(width - length, width) if padding_side == "left" else slice(0, length)
            input_ids[row, span] = torch.tensor(it["input_ids"], dtype=torch.long)
            attention_mask[row, span] = 1
            if labels is not None:
                labels[row, span] = torch.tensor(it["labels"], dtype=torch.long)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),
        }
        if labels is not None:
            batch["labels"] = labels
        return batch

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Token ids -> text, special tokens dropped and outer whitespace stripped."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()
