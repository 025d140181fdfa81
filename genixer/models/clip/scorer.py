"""Score (image, box, expression) triples with a CLIP: crop the box, compare with the text.

- :func:`to_pixels` turns PIL crops into CLIP's normalized pixels (squashed to a square, or
  OpenAI's own center crop).
- :class:`CropScorer` crops (boxes normalized to the ORIGINAL image, clipped to its bounds,
  rounded outward), skips crops under ``min_crop_px`` and empty expressions (counted in
  ``skipped_reasons``), and scores in batches, deterministically and batch-invariantly.
  ``mode="cosine"`` (default) is the cosine of the L2-normalized features, in [-1, 1].
  ``mode="raw_dot"`` is the original code's score: the plain dot product of the UNNORMALIZED
  image and text features (no logit scale, nothing else); the original kept samples whose
  raw score was >= 60 with OpenAI ViT-L/14. That number only means something for that model.
  ``margin=(stride, max_iou)`` (an extension, off by default) scores the box against the rest
  of its image: a referring expression must fit its box AND nowhere else, which a crop alone
  cannot show.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from open_clip.model import CLIP
from PIL import Image

from genixer.core.boxes import denormalize, iou
from genixer.models.clip.model import OPENAI_MEAN, OPENAI_STD, Tokenizer

SCORE_MODES = ("cosine", "raw_dot")
RESIZE_MODES = ("squash", "center_crop")

PixelBox = tuple[int, int, int, int]


def _resized(img: Image.Image, image_size: int, resize_mode: str) -> Image.Image:
    img = img.convert("RGB")
    if resize_mode == "squash":
        return img.resize((image_size, image_size), Image.Resampling.BICUBIC)
    w, h = img.size
    s = image_size / min(w, h)
    nw, nh = max(image_size, round(w * s)), max(image_size, round(h * s))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - image_size) // 2, (nh - image_size) // 2
    return img.crop((left, top, left + image_size, top + image_size))


def to_pixels(
    images: Sequence[Image.Image],
    image_size: int,
    *,
    mean: Sequence[float] = OPENAI_MEAN,
    std: Sequence[float] = OPENAI_STD,
    resize_mode: str = "squash",
) -> torch.Tensor:
    """PIL images -> normalized float tensor ``[n, 3, image_size, image_size]``.

    ``squash``: resize the whole crop to a square (bicubic), nothing cut off. ``center_crop``:
    OpenAI's own preprocessing (shortest side to ``image_size``, then a center crop).
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    arrays = [
        np.asarray(_resized(img, image_size, resize_mode), dtype=np.float32) / 255.0
        for img in images
    ]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class _Pending:
    """Crops waiting to be encoded, flushed ``batch_size`` at a time: each item's own crop
    similarity, and the best similarity among its rival windows."""

    def __init__(self, scorer: CropScorer, batch_size: int) -> None:
        self.scorer = scorer
        self.batch_size = batch_size
        self.items: list[tuple[int, bool, Image.Image, str]] = []
        self.own: dict[int, float] = {}
        self.rival: dict[int, float] = {}

    def add(self, i: int, is_own: bool, crop: Image.Image, text: str) -> None:
        self.items.append((i, is_own, crop, text))
        if len(self.items) == self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.items:
            return
        sims = self.scorer._encode([p[2] for p in self.items], [p[3] for p in self.items])
        for (i, is_own, _, _), s in zip(self.items, sims, strict=True):
            if is_own:
                self.own[i] = float(s)
            else:
                self.rival[i] = max(self.rival.get(i, -math.inf), float(s))
        self.items.clear()


class CropScorer:
    """Score (image, box, expression) triples with CLIP: crop the box, compare with the text.

    Boxes are ``(x0, y0, x1, y1)`` normalized to the ORIGINAL image. ``skipped_reasons``
    accumulates over calls (``clear()`` it to reset): ``crop_too_small`` (a side under
    ``min_crop_px`` after clipping), ``box_outside_image`` (nothing left after clipping),
    ``bad_box`` (not 4 finite numbers, or x1 < x0 / y1 < y0), ``empty_text``.
    """

    def __init__(
        self,
        model: CLIP,
        tokenizer: Tokenizer,
        image_size: int,
        *,
        mean: Sequence[float] = OPENAI_MEAN,
        std: Sequence[float] = OPENAI_STD,
        min_crop_px: int = 50,
        mode: str = "cosine",
        resize_mode: str = "squash",
    ):
        if mode not in SCORE_MODES:
            raise ValueError(f"mode must be one of {SCORE_MODES}, got {mode!r}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.min_crop_px = int(min_crop_px)
        self.mode = mode
        self.resize_mode = resize_mode
        self.skipped_reasons: Counter[str] = Counter()
        self.no_rival_window = 0  # margin scores that fell back to the plain similarity

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The model's input pixels for ``images``, with this scorer's preprocessing."""
        return to_pixels(
            images, self.image_size, mean=self.mean, std=self.std, resize_mode=self.resize_mode
        )

    def pixel_box(self, image: Image.Image, box_norm: Sequence[float]) -> PixelBox:
        """The integer pixel box a crop takes: clipped to the image, rounded outward.

        Raises ``ValueError`` for a box that is not 4 finite numbers or is inverted.
        """
        vals = [float(v) for v in box_norm]
        if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
            raise ValueError(f"not a box of 4 finite numbers: {box_norm!r}")
        if vals[2] < vals[0] or vals[3] < vals[1]:
            raise ValueError(f"inverted box (x1<x0 or y1<y0): {box_norm!r}")
        w, h = image.size
        x0, y0, x1, y1 = denormalize(vals, w, h)
        x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
        y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
        eps = 1e-6  # 0.3 * 100 = 30.000000000000004 must not round out to 31
        return (
            max(0, math.floor(x0 + eps)),
            max(0, math.floor(y0 + eps)),
            min(w, math.ceil(x1 - eps)),
            min(h, math.ceil(y1 - eps)),
        )

    def _usable_box(self, image: Image.Image, box_norm: Sequence[float]):
        """``(pixel box, None)`` for a box worth cropping, else ``(None, skip reason)``."""
        try:
            x0, y0, x1, y1 = self.pixel_box(image, box_norm)
        except (ValueError, TypeError):
            return None, "bad_box"
        if x1 <= x0 or y1 <= y0:
            return None, "box_outside_image"
        if x1 - x0 < self.min_crop_px or y1 - y0 < self.min_crop_px:
            return None, "crop_too_small"
        return (x0, y0, x1, y1), None

    def crop(self, image: Image.Image, box_norm: Sequence[float]) -> Image.Image | None:
        """The box's crop of ``image``, or None when unusable (too small, outside, malformed)."""
        px, _ = self._usable_box(image, box_norm)
        return None if px is None else image.crop(px)

    @torch.no_grad()
    def _encode(self, crops: list[Image.Image], texts: list[str]) -> list[float]:
        dev = _device(self.model)
        pixels = self.pixels(crops)
        tokens = self.tokenizer(texts)
        normalize = self.mode == "cosine"
        img = self.model.encode_image(pixels.to(dev), normalize=normalize).float()
        txt = self.model.encode_text(tokens.to(dev), normalize=normalize).float()
        return (img * txt).sum(-1).cpu().tolist()

    def windows(
        self, image: Image.Image, px_box: Sequence[int], stride: float, max_iou: float
    ) -> list[PixelBox]:
        """Pixel windows of the box's size elsewhere in ``image``: a grid with a step of
        ``stride`` times the box's side, keeping those whose IoU with the box is <= ``max_iou``."""
        x0, y0, x1, y1 = px_box
        w, h = x1 - x0, y1 - y0
        width, height = image.size

        def starts(span: int, step: int) -> list[int]:
            found = list(range(0, span + 1, step))
            return found if found[-1] == span else [*found, span]

        xs = starts(width - w, max(1, round(stride * w)))
        ys = starts(height - h, max(1, round(stride * h)))
        grid = [(x, y, x + w, y + h) for y in ys for x in xs]
        return [b for b in grid if iou(b, px_box) <= max_iou]

    def score(
        self,
        items: Sequence[tuple[Image.Image, Sequence[float], str]],
        batch_size: int = 64,
        margin: tuple[float, float] | None = None,
    ) -> list[float | None]:
        """One score per ``(image, box_norm, expression)``; None where the item was skipped.

        ``margin=(stride, max_iou)`` scores the box against the rest of its image: the box
        crop's similarity minus the best similarity among :meth:`windows` (the plain
        similarity when no window is left; counted in ``no_rival_window``). A crop that
        matches its expression is not enough for a referring expression: the expression must
        fit nowhere else. Where it does (an ambiguous expression) the margin is <= 0.

        Crops are encoded in batches of ``batch_size`` (eval mode, no grad), so an item's
        score does not depend on what else is in the call (up to float rounding, ~1e-6).
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if margin is not None and not (margin[0] > 0 and 0 <= margin[1] < 1):
            raise ValueError(f"margin needs stride > 0 and 0 <= max_iou < 1, got {margin}")
        pending = _Pending(self, batch_size)
        was_training = self.model.training
        self.model.eval()
        try:
            for i, (image, box, text) in enumerate(items):
                self._queue(pending, i, (image, box, text), margin)
            pending.flush()
        finally:
            self.model.train(was_training)
        out: list[float | None] = [None] * len(items)
        for i, s in pending.own.items():
            if margin is not None and i in pending.rival:
                s -= pending.rival[i]
            elif margin is not None:
                self.no_rival_window += 1
            out[i] = s
        return out

    def _queue(
        self,
        pending: _Pending,
        i: int,
        item: tuple[Image.Image, Sequence[float], str],
        margin: tuple[float, float] | None,
    ) -> None:
        """Queue item ``i``'s crop (and its rival windows), or count why it is skipped."""
        image, box, text = item
        if not isinstance(text, str) or not text.strip():
            self.skipped_reasons["empty_text"] += 1
            return
        px, reason = self._usable_box(image, box)
        if px is None:
            self.skipped_reasons[reason] += 1
            return
        text = text.strip()
        pending.add(i, True, image.crop(px), text)
        for window in self.windows(image, px, *margin) if margin is not None else []:
            pending.add(i, False, image.crop(window), text)
