"""The CLIP-driven filter (the paper's filter for REC data): crop each record's box out of
its image and score the crop against the record's expression.

On the built-in world the CLIP is a tiny open_clip model trained here on (object crop,
unique expression) pairs of the judge split; ``checkpoint`` loads OpenAI's ViT-L/14 (a
local file or transformers folder) instead. ``score_mode`` ``cosine`` is the cosine of the
normalized features; ``raw_dot`` is the original code's unnormalized dot product.
``margin`` (an extension) scores the box against the rest of its image.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genixer.core.build import build
from genixer.core.record import Record, write_jsonl
from genixer.filters.base import SCORES, Filter, FilterEnv, score_quality
from genixer.filters.clip_data import calibrate_threshold, clip_items, training_pairs
from genixer.models.clip.model import (
    clip_spec_of,
    clip_tokenizer,
    load_clip,
    load_openai_clip,
    save_clip,
)
from genixer.models.clip.scorer import CropScorer
from genixer.models.clip.train import train_clip
from genixer.training.fit import seed_model_init


class ClipFilter(Filter):
    train_stage = "train_clip"
    train_version = 3  # 3: trained through Lightning (fit_module), the run's trainer config

    def __init__(
        self,
        *,
        name: str,
        checkpoint: str | None,
        model: dict,
        train: dict,
        score_mode: str,
        margin: dict,
        min_crop_px: int,
        batch_size: int,
        band: list[float] | None,
        threshold: float | str | None,
    ):
        super().__init__(name=name, band=band, threshold=threshold)
        self.checkpoint = checkpoint
        self.model = model
        self.train_cfg = train
        self.score_mode = score_mode
        self.margin = (
            (float(margin["stride"]), float(margin["max_iou"])) if margin["enabled"] else None
        )
        self.min_crop_px = min_crop_px
        self.batch_size = batch_size

    def scorer(self, model) -> CropScorer:
        """Crops scored with the model's own geometry (a real checkpoint is not the tiny spec)."""
        return CropScorer(
            model,
            clip_tokenizer(model.context_length),
            model.visual.image_size[0],
            min_crop_px=self.min_crop_px,
            mode=self.score_mode,
        )

    def train_key(self, seed: int, trainer_key: dict) -> dict:
        return {
            "model": self.model,
            "train": self.train_cfg,
            "seed": seed,
            "checkpoint": self.checkpoint,
            "min_crop_px": self.min_crop_px,
            "trainer": trainer_key,
        }

    def train(self, env: FilterEnv, folder: Path) -> dict:
        if self.checkpoint:
            model = load_openai_clip(self.checkpoint)
            spec = clip_spec_of(model)
            save_clip(model, spec, folder / "model")
            return {"checkpoint": str(self.checkpoint), "spec": spec}
        seed_model_init(env.seed, "clip")
        model = build(self.model)
        scorer = self.scorer(model)
        pairs = training_pairs(env.splits["judge"], env.world, scorer, env.seed)
        info = train_clip(
            scorer,
            pairs,
            train=self.train_cfg,
            trainer_cfg=env.trainer,
            seed=env.seed,
            log_dir=folder / "logs",
            checkpoint_every=env.checkpoint_every,
        )
        save_clip(model, self.model["spec"], folder / "model")
        with torch.no_grad():
            info |= calibrate_threshold(scorer, pairs, env.seed)
        return info | {"pairs": len(pairs), "skipped": dict(scorer.skipped_reasons)}

    def threshold_for(self, trained_info: dict) -> float | None:
        if self.threshold == "calibrated" and self.margin is not None:
            raise ValueError(
                "filter.threshold=calibrated is a similarity; margin scores (filter.margin) "
                "need a margin threshold, e.g. 0: the box fits its expression best"
            )
        return super().threshold_for(trained_info)

    def score_key(self, seed: int) -> dict:
        key = {"filter": "clip", "mode": self.score_mode, "min_crop_px": self.min_crop_px}
        if self.margin is not None:  # absent when off: old scores stay valid
            key["margin"] = list(self.margin)
        return key

    def score(self, env: FilterEnv, trained: Path, records: list[Record], folder: Path) -> dict:
        scorer = self.scorer(load_clip(trained / "model"))
        items, owners, skipped = clip_items(records, env.world)
        values = (
            scorer.score(items, batch_size=self.batch_size, margin=self.margin) if items else []
        )
        scores = dict(zip(owners, values, strict=True))
        skipped.update(scorer.skipped_reasons)
        write_jsonl(folder / SCORES, [{"id": r.id, "score": scores.get(r.id)} for r in records])
        kept = {k: v for k, v in scores.items() if v is not None}
        info = {"skipped": dict(skipped)}
        if self.margin is not None:
            info["no_rival_window"] = scorer.no_rival_window
        return score_quality(records, kept) | info
