"""Contrastive training of a (tiny) CLIP on (crop, expression) pairs, through Lightning.

The CLIP trains like every other model of the project (:func:`genixer.training.fit.fit_module`):
the run's ``trainer`` config, ``checkpoint_every`` with exact resume from ``last.ckpt``, the
seeded replayable batch order of :class:`~genixer.training.data.InstructionDataModule`, the
same progress log and the same returned counts.

- :class:`ClipPairs`: the pairs encoded once: crop pixels, token ids, an expression id
  (equal ids <=> equal token sequences).
- :func:`collate_pairs`: a batch, with the ``positives`` mask: identical expressions in a
  batch ("the red object" twice) are positives of each other, not negatives.
- :class:`ContrastiveModule`: :func:`contrastive_loss`, AdamW, ``logit_scale`` clamped to
  ln(100) after each optimizer step as in CLIP.
- :func:`train_clip`: the three put together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from genixer.models.clip.model import Tokenizer
from genixer.models.clip.scorer import CropScorer
from genixer.training.data import InstructionDataModule
from genixer.training.fit import fit_module
from genixer.training.module import NonFiniteLossError

MAX_LOGIT_SCALE = math.log(100.0)


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
    target = positives.to(logits.dtype)
    target = target / target.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target.T))


class ClipPairs(Dataset):
    """(crop pixels, token ids, expression id) per (crop, expression) pair, encoded once.

    ``pixels`` turns crops into the model's input (a :meth:`CropScorer.pixels`, so training
    sees the crops as scoring will). An empty expression is refused.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Image.Image, str]],
        *,
        tokenizer: Tokenizer,
        pixels: Callable[[list[Image.Image]], torch.Tensor],
    ) -> None:
        if not pairs:
            raise ValueError("CLIP training needs at least one (image, text) pair")
        texts = [t.strip() if isinstance(t, str) else "" for _, t in pairs]
        if any(not t for t in texts):
            raise ValueError("CLIP training got an empty expression")
        self.tokens = tokenizer(texts)
        _, self.text_ids = torch.unique(self.tokens, dim=0, return_inverse=True)
        self.pixels = pixels([image for image, _ in pairs])

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.pixels[i], self.tokens[i], int(self.text_ids[i])


def collate_pairs(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> dict:
    """A batch of :class:`ClipPairs` items: ``pixels``, ``tokens``, ``positives`` (same
    expression id) and ``attention_mask`` (the text's non-padding tokens, which the progress
    log counts)."""
    pixels, tokens, ids = zip(*items, strict=True)
    tokens_t = torch.stack(tokens)
    ids_t = torch.tensor(ids)
    return {
        "pixels": torch.stack(pixels),
        "tokens": tokens_t,
        "positives": ids_t[:, None] == ids_t[None, :],
        "attention_mask": tokens_t != 0,
    }


class ContrastiveModule(L.LightningModule):
    """CLIP's contrastive training: AdamW (torch's default betas) at a constant ``lr``;
    ``logit_scale`` clamped to [0, ln(100)] after each optimizer step.

    ``initial_loss`` is the loss of the run's first step; a checkpoint keeps it, so a resumed
    run reports the same one.
    """

    def __init__(self, model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.initial_loss: float | None = None
        model.train()  # Lightning keeps each module's mode as it finds it

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        img = self.model.encode_image(batch["pixels"])
        txt = self.model.encode_text(batch["tokens"])
        loss = contrastive_loss(img, txt, self.model.logit_scale, batch["positives"])
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step}; lower the learning rate "
                "or check the data. The last saved checkpoint is kept."
            )
        if self.initial_loss is None:
            self.initial_loss = float(loss.detach())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["tokens"].shape[0])
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        with torch.no_grad():
            self.model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["clip_initial_loss"] = self.initial_loss

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.initial_loss = checkpoint.get("clip_initial_loss")


def train_clip(
    scorer: CropScorer,
    pairs: Sequence[tuple[Image.Image, str]],
    *,
    train,
    trainer_cfg,
    seed: int,
    log_dir: str | Path,
    checkpoint_every: int = 0,
) -> dict:
    """Train ``scorer.model`` in place on (crop, expression) pairs for ``train["steps"]``
    optimizer steps, batches of ``train["batch_size"]`` (all pairs when fewer), AdamW at
    ``train["lr"]`` (``train["weight_decay"]``, default 0), through ``trainer_cfg``'s
    Lightning trainer (:func:`~genixer.training.fit.fit_module`: ``checkpoint_every`` and
    resume as for every model). Crops go through the scorer's own preprocessing.

    The same arguments and seed give the same weights. The model is left in eval mode.
    Returns the counts of ``fit_module`` with ``examples`` (pairs) and ``initial_loss``.
    """
    dataset = ClipPairs(pairs, tokenizer=scorer.tokenizer, pixels=scorer.pixels)
    module = ContrastiveModule(scorer.model, lr=train["lr"])
    data = InstructionDataModule(dataset, collate_pairs, int(train["batch_size"]), seed)
    try:
        info = fit_module(
            module,
            data,
            steps=int(train["steps"]),
            trainer_cfg=trainer_cfg,
            seed=seed,
            log_dir=log_dir,
            checkpoint_every=checkpoint_every,
        )
    finally:
        scorer.model.eval()
    initial = math.nan if module.initial_loss is None else module.initial_loss
    return {"examples": len(dataset)} | info | {"initial_loss": initial}
