"""CLIP-driven filtering of generated REC data: crop the box, score it against the expression.

The paper (GENIXER.md, "Data filtering") crops each generated box out of its image, scores the
crop against the referring expression with CLIP ViT-L/14 and keeps crops of at least 50 px a side
whose score passes a threshold. This module owns that filter:

- :func:`build_clip` builds a tiny CLIP from a spec dict through open_clip's own classes
  (``open_clip.model.CLIP`` with ``CLIPVisionCfg`` / ``CLIPTextCfg``); :func:`save_clip` /
  :func:`load_clip` keep it as ``open_clip_model.safetensors`` + ``clip_spec.json`` (pickled
  weights are refused). :func:`load_openai_clip` loads the real OpenAI ViT-L/14 from a LOCAL file.
- :func:`clip_tokenizer` is open_clip's own ``SimpleTokenizer``: its BPE vocabulary
  (``bpe_simple_vocab_16e6.txt.gz``) ships inside the open_clip package, so it works offline.
  It has 49408 tokens, so every spec needs ``vocab_size >= 49408``.
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
- :func:`train_clip` trains a (tiny) CLIP contrastively on (crop, expression) pairs.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer
from PIL import Image
from safetensors.torch import load_file, save_file

from genixer.core.boxes import denormalize, iou

# OpenAI CLIP's pixel statistics (the same numbers as ``genixer.models.llava.model.CLIP_MEAN/STD``).
OPENAI_MEAN: tuple[float, float, float] = tuple(open_clip.constants.OPENAI_DATASET_MEAN)  # type: ignore[assignment]
OPENAI_STD: tuple[float, float, float] = tuple(open_clip.constants.OPENAI_DATASET_STD)  # type: ignore[assignment]

WEIGHTS_NAME = "open_clip_model.safetensors"
SPEC_NAME = "clip_spec.json"
SCORE_MODES = ("cosine", "raw_dot")
RESIZE_MODES = ("squash", "center_crop")
SPEC_KEYS = (
    "embed_dim",
    "image_size",
    "patch_size",
    "vision_width",
    "vision_layers",
    "vision_heads",
    "text_width",
    "text_layers",
    "text_heads",
    "context_length",
    "vocab_size",
)
OPTIONAL_SPEC_KEYS = ("quick_gelu",)  # OpenAI's checkpoints use QuickGELU; default False
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

Tokenizer = Callable[[list[str]], torch.Tensor]


# --------------------------------------------------------------------------- build / io


@functools.cache
def _tokenizer_vocab_size() -> int:
    return len(SimpleTokenizer().encoder)


def _check_spec(spec: dict) -> dict:
    spec = dict(spec)
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise ValueError(f"CLIP spec is missing {missing}")
    unknown = sorted(set(spec) - set(SPEC_KEYS) - set(OPTIONAL_SPEC_KEYS))
    if unknown:
        raise ValueError(
            f"unknown CLIP spec keys {unknown}; known: {SPEC_KEYS + OPTIONAL_SPEC_KEYS}"
        )
    for k in SPEC_KEYS:
        spec[k] = int(spec[k])
        if spec[k] <= 0:
            raise ValueError(f"CLIP spec {k} must be positive, got {spec[k]}")
    spec["quick_gelu"] = bool(spec.get("quick_gelu", False))
    if spec["image_size"] % spec["patch_size"]:
        raise ValueError(f"image_size {spec['image_size']} is not a multiple of patch_size")
    for w, h in (("vision_width", "vision_heads"), ("text_width", "text_heads")):
        if spec[w] % spec[h]:
            raise ValueError(f"{w}={spec[w]} is not divisible by {h}={spec[h]}")
    n_vocab = _tokenizer_vocab_size()
    if spec["vocab_size"] < n_vocab:
        raise ValueError(
            f"vocab_size {spec['vocab_size']} < {n_vocab}, the size of open_clip's tokenizer"
        )
    return spec


def build_clip(spec: dict) -> CLIP:
    """A (tiny) CLIP from a spec dict, built with open_clip's own classes, in eval mode.

    Keys: embed_dim, image_size, patch_size, vision_width, vision_layers, vision_heads,
    text_width, text_layers, text_heads, context_length, vocab_size (>= 49408, the size of
    open_clip's tokenizer); optional quick_gelu (default False). Seed torch before calling it
    for reproducible initial weights.
    """
    spec = _check_spec(spec)
    vision_cfg = CLIPVisionCfg(
        layers=spec["vision_layers"],
        width=spec["vision_width"],
        head_width=spec["vision_width"] // spec["vision_heads"],
        patch_size=spec["patch_size"],
        image_size=spec["image_size"],
    )
    text_cfg = CLIPTextCfg(
        context_length=spec["context_length"],
        vocab_size=spec["vocab_size"],
        width=spec["text_width"],
        heads=spec["text_heads"],
        layers=spec["text_layers"],
    )
    model = CLIP(
        spec["embed_dim"], vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=spec["quick_gelu"]
    )
    return model.eval()


def clip_tokenizer(context_length: int) -> SimpleTokenizer:
    """open_clip's BPE tokenizer (vocabulary shipped in the package, no download).

    Calling it on a list of strings gives a LongTensor ``[n, context_length]``: start token,
    lower-cased BPE tokens, end token (kept as the last token when a text is truncated), zeros.
    """
    return SimpleTokenizer(context_length=int(context_length))


def clip_spec_of(model: CLIP) -> dict:
    """The spec that :func:`build_clip` turns into ``model``'s architecture (for saving a
    loaded real checkpoint, e.g. OpenAI ViT-L/14, as a :func:`save_clip` folder)."""
    vis, txt = model.visual.transformer.resblocks, model.transformer.resblocks
    for blocks, width in (
        (vis, model.visual.conv1.out_channels),
        (txt, model.ln_final.normalized_shape[0]),
    ):
        if blocks[0].mlp.c_fc.out_features != 4 * width:
            raise ValueError("only CLIPs with an MLP ratio of 4 (all OpenAI ones) have a spec")
    return _check_spec(
        {
            "embed_dim": model.text_projection.shape[1],
            "image_size": model.visual.image_size[0],
            "patch_size": model.visual.patch_size[0],
            "vision_width": model.visual.conv1.out_channels,
            "vision_layers": len(vis),
            "vision_heads": vis[0].attn.num_heads,
            "text_width": model.ln_final.normalized_shape[0],
            "text_layers": len(txt),
            "text_heads": txt[0].attn.num_heads,
            "context_length": model.context_length,
            "vocab_size": model.vocab_size,
            "quick_gelu": isinstance(vis[0].mlp.gelu, open_clip.transformer.QuickGELU),
        }
    )


def save_clip(model: CLIP, spec: dict, directory: str | os.PathLike) -> None:
    """Write ``open_clip_model.safetensors`` + ``clip_spec.json`` to ``directory``."""
    spec = _check_spec(spec)
    os.makedirs(directory, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(directory, WEIGHTS_NAME))
    with open(os.path.join(directory, SPEC_NAME), "w") as f:
        json.dump(spec, f, indent=2, sort_keys=True)


def read_clip_spec(directory: str | os.PathLike) -> dict:
    with open(os.path.join(directory, SPEC_NAME)) as f:
        return json.load(f)


def load_clip(directory: str | os.PathLike) -> CLIP:
    """Load a CLIP written by :func:`save_clip` (eval mode, float32, CPU).

    Only safetensors are read: a folder holding only pickled weights (``.bin``/``.pt``...) is
    refused with a ``ValueError`` (unpickling can run arbitrary code).
    """
    directory = str(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no CLIP folder at {directory}")
    files = os.listdir(directory)
    if WEIGHTS_NAME not in files:
        pickles = sorted(f for f in files if f.endswith(_PICKLE_SUFFIXES))
        if pickles:
            raise ValueError(
                f"{directory} holds only pickled weights ({', '.join(pickles)}), which are "
                "refused: unpickling can run arbitrary code. Convert them to safetensors in a "
                f"trusted environment (save_clip) and load the {WEIGHTS_NAME} folder instead."
            )
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory}")
    if SPEC_NAME not in files:
        raise FileNotFoundError(f"no {SPEC_NAME} in {directory}")
    model = build_clip(read_clip_spec(directory))
    model.load_state_dict(load_file(os.path.join(directory, WEIGHTS_NAME)), strict=True)
    return model.eval()


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def load_openai_clip(
    path: str | os.PathLike,
    model_name: str = "ViT-L-14",
    allow_torchscript: bool = False,
) -> CLIP:
    """OpenAI CLIP (default ViT-L/14, the paper's filter model) from a LOCAL file, eval, fp32.

    - ``*.safetensors`` holding the OpenAI/open_clip state dict: built through
      ``open_clip.create_model(model_name, pretrained=path, force_quick_gelu=True)``.
      QuickGELU is forced because OpenAI trained with it; open_clip's plain ``ViT-L-14`` config
      uses GELU and, with a file path instead of the ``openai`` tag, would not warn.
    - OpenAI's original ``ViT-L-14.pt`` is a TorchScript archive. It is read only with
      ``allow_torchscript=True`` (``torch.jit.load``; its state dict is then rebuilt with
      ``open_clip.model.build_model_from_openai_state_dict``). Other pickles are refused.

    - a transformers ``CLIPModel`` FOLDER (``openai/clip-vit-large-patch14`` as the HF hub
      holds it, the very folder Shikra's tower comes from): built from its config and
      converted to open_clip's names (:mod:`genixer.models.clip.convert_hf`); ``model_name`` is
      not used then.

    Never a tag: a path that is not an existing file or folder raises ``FileNotFoundError``
    (open_clip would otherwise try to download a tag such as ``"openai"``). Use
    ``clip_tokenizer(77)`` and ``OPENAI_MEAN``/``OPENAI_STD``, image size 224, with it.
    """
    path = str(path)
    if os.path.isdir(path):
        from genixer.models.clip.convert_hf import load_hf_clip_as_open_clip

        return load_hf_clip_as_open_clip(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no local CLIP checkpoint file at {path!r} (tags are not loaded)")
    if path.endswith(".safetensors"):
        model = open_clip.create_model(
            model_name, pretrained=path, force_quick_gelu=True, precision="fp32", device="cpu"
        )
        return model.eval()
    if _is_torchscript(path):
        if not allow_torchscript:
            raise ValueError(
                f"{path} is a TorchScript archive; pass allow_torchscript=True to read it, or "
                "convert it to safetensors once in a trusted environment"
            )
        with warnings.catch_warnings():  # torch.jit is deprecated; OpenAI's files are jit
            warnings.filterwarnings("ignore", message=".*torch.jit.load", category=FutureWarning)
            jit = torch.jit.load(path, map_location="cpu")
        # attn_mask is a constant open_clip rebuilds (a non-persistent buffer there).
        state = {k: v for k, v in jit.state_dict().items() if k != "attn_mask"}
        model = open_clip.model.build_model_from_openai_state_dict(state)
        return model.float().eval()
    raise ValueError(f"{path}: only .safetensors (or a TorchScript archive) are read, no pickles")


# --------------------------------------------------------------------------- preprocessing


def _to_pixels(
    images: Sequence[Image.Image],
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    resize_mode: str = "squash",
) -> torch.Tensor:
    """PIL images -> normalized float tensor ``[n, 3, image_size, image_size]``.

    ``squash``: resize the whole crop to a square (bicubic), nothing cut off. ``center_crop``:
    OpenAI's own preprocessing (shortest side to ``image_size``, then a center crop).
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    arrays = []
    for img in images:
        img = img.convert("RGB")
        if resize_mode == "squash":
            img = img.resize((image_size, image_size), Image.Resampling.BICUBIC)
        else:
            w, h = img.size
            s = image_size / min(w, h)
            nw, nh = max(image_size, round(w * s)), max(image_size, round(h * s))
            img = img.resize((nw, nh), Image.Resampling.BICUBIC)
            left, top = (nw - image_size) // 2, (nh - image_size) // 2
            img = img.crop((left, top, left + image_size, top + image_size))
        arrays.append(np.asarray(img, dtype=np.float32) / 255.0)
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------- scoring


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

    def pixel_box(self, image: Image.Image, box_norm: Sequence[float]) -> tuple[int, int, int, int]:
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
        pixels = _to_pixels(crops, self.image_size, self.mean, self.std, self.resize_mode)
        tokens = self.tokenizer(texts)
        normalize = self.mode == "cosine"
        img = self.model.encode_image(pixels.to(dev), normalize=normalize).float()
        txt = self.model.encode_text(tokens.to(dev), normalize=normalize).float()
        return (img * txt).sum(-1).cpu().tolist()

    def windows(
        self, image: Image.Image, px_box: Sequence[int], stride: float, max_iou: float
    ) -> list[tuple[int, int, int, int]]:
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
        out: list[float | None] = [None] * len(items)
        own: dict[int, float] = {}
        rival: dict[int, float] = {}
        pending: list[tuple[int, bool, Image.Image, str]] = []
        was_training = self.model.training
        self.model.eval()
        try:

            def add(i: int, is_own: bool, crop: Image.Image, text: str) -> None:
                pending.append((i, is_own, crop, text))
                if len(pending) == batch_size:
                    flush()

            def flush() -> None:
                sims = self._encode([p[2] for p in pending], [p[3] for p in pending])
                for (i, is_own, _, _), s in zip(pending, sims, strict=True):
                    if is_own:
                        own[i] = float(s)
                    else:
                        rival[i] = max(rival.get(i, -math.inf), float(s))
                pending.clear()

            for i, (image, box, text) in enumerate(items):
                if not isinstance(text, str) or not text.strip():
                    self.skipped_reasons["empty_text"] += 1
                    continue
                px, reason = self._usable_box(image, box)
                if px is None:
                    self.skipped_reasons[reason] += 1
                    continue
                text = text.strip()
                add(i, True, image.crop(px), text)
                for window in self.windows(image, px, *margin) if margin is not None else []:
                    add(i, False, image.crop(window), text)
            if pending:
                flush()
        finally:
            self.model.train(was_training)
        for i, s in own.items():
            if margin is not None and i in rival:
                s -= rival[i]
            elif margin is not None:
                self.no_rival_window += 1
            out[i] = s
        return out


# --------------------------------------------------------------------------- training


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE on L2-normalized features with ``exp(logit_scale)``.

    ``positives`` (bool ``[n, n]``, symmetric) marks pairs that count as matches; the target is
    uniform over them (default: the diagonal, i.e. CLIP's loss). With repeated expressions in a
    batch ("the red object" twice) the repeats are positives, not negatives.
    """
    img = F.normalize(image_features, dim=-1)
    txt = F.normalize(text_features, dim=-1)
    logits = logit_scale.exp() * img @ txt.T
    n = logits.shape[0]
    if positives is None:
        positives = torch.eye(n, dtype=torch.bool, device=logits.device)
    target = positives.float()
    target = target / target.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target.T))


def train_clip(
    model: CLIP,
    tokenizer: Tokenizer,
    pairs: Sequence[tuple[Image.Image, str]],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    image_size: int,
    mean: Sequence[float] = OPENAI_MEAN,
    std: Sequence[float] = OPENAI_STD,
    weight_decay: float = 0.0,
    resize_mode: str = "squash",
) -> dict[str, Any]:
    """Contrastive training on (crop image, expression) pairs; plain AdamW loop, in place.

    Batches walk seeded permutations of ``pairs`` (``batch_size`` capped at ``len(pairs)``);
    identical expressions in a batch are treated as positives (:func:`contrastive_loss`);
    ``logit_scale`` is clamped to ln(100) after each step as in CLIP. The model is left in eval
    mode. Returns ``{"steps", "final_loss", "initial_loss"}`` (per-step batch losses).
    """
    if not pairs:
        raise ValueError("train_clip needs at least one (image, text) pair")
    if steps < 0 or batch_size <= 0:
        raise ValueError(f"steps must be >= 0 and batch_size > 0, got {steps}, {batch_size}")
    texts = [t.strip() if isinstance(t, str) else "" for _, t in pairs]
    if any(not t for t in texts):
        raise ValueError("train_clip got an empty expression")
    dev = _device(model)
    tokens = tokenizer(texts)
    # Expressions as ids: equal ids <=> equal token sequences.
    _, text_ids = torch.unique(tokens, dim=0, return_inverse=True)
    gen = torch.Generator().manual_seed(int(seed))
    n = len(pairs)
    bs = min(int(batch_size), n)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay
    )
    max_scale = math.log(100.0)
    order: list[int] = []
    losses: list[float] = []
    model.train()
    try:
        for _ in range(int(steps)):
            while len(order) < bs:
                order.extend(torch.randperm(n, generator=gen).tolist())
            idx, order = order[:bs], order[bs:]
            pixels = _to_pixels([pairs[i][0] for i in idx], image_size, mean, std, resize_mode)
            ids = text_ids[idx]
            positives = ids[:, None] == ids[None, :]
            img = model.encode_image(pixels.to(dev))
            txt = model.encode_text(tokens[idx].to(dev))
            loss = contrastive_loss(img, txt, model.logit_scale, positives.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, max_scale)
            losses.append(float(loss.detach()))
    finally:
        model.eval()
    return {
        "steps": len(losses),
        "final_loss": losses[-1] if losses else float("nan"),
        "initial_loss": losses[0] if losses else float("nan"),
    }
