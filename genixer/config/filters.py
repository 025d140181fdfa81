"""The schema of the filter group, one dataclass per filter (picked by ``_target_``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from genixer.config.check import at_least, fail, optional, within
from genixer.config.models import TRAINABLE, JudgePatchPretrain, PatchPretrain, TrainPhase


# ------------------------------------------------------------------ filters
@dataclass(kw_only=True)
class FilterBase:
    _target_: str
    name: str
    band: list[float] | None  # keep lo <= score < hi
    threshold: float | str | None  # keep score >= threshold; "calibrated": the filter's own
    _recursive_: bool = optional()

    def check(self, path: str) -> None:
        if self.band is not None and (len(self.band) != 2 or self.band[0] >= self.band[1]):
            fail(f"{path}.band", f"must be [lo, hi] with lo < hi, got {self.band}")
        if isinstance(self.threshold, str) and self.threshold != "calibrated":
            fail(f"{path}.threshold", f"must be a number or 'calibrated', got {self.threshold!r}")


@dataclass(kw_only=True)
class NoFilterConfig(FilterBase):
    def check(self, path: str) -> None:
        for name in ("band", "threshold"):
            if getattr(self, name) is not None:
                fail(f"{path}.{name}", "filter=none scores nothing: band and threshold are null")


@dataclass(kw_only=True)
class JudgeSpec:
    image_size: int
    patch_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_position_embeddings: int


@dataclass(kw_only=True)
class JudgeModel:
    _target_: str
    spec: JudgeSpec


@dataclass(kw_only=True)
class JudgeTrain(TrainPhase):
    """The judge's fit (its ``trainable`` is always ``all``: it has no frozen tower)."""

    trainable: TRAINABLE = optional()
    items_per_image: int  # fresh question/answer draws per judge image
    hard_negatives: float
    vqa_per_image: int
    answerable: float
    explain: bool

    def check(self, path: str) -> None:
        super().check(path)
        at_least(f"{path}.items_per_image", self.items_per_image, 1)
        at_least(f"{path}.vqa_per_image", self.vqa_per_image, 0)
        within(f"{path}.hard_negatives", self.hard_negatives, 0.0, 1.0)
        within(f"{path}.answerable", self.answerable, 0.0, 1.0)


@dataclass(kw_only=True)
class FuyuFilterConfig(FilterBase):
    checkpoint: str | None
    model: JudgeModel
    train: JudgeTrain
    vision_pretrain: JudgePatchPretrain | None
    score_mode: Literal["p_yes", "sampled"]
    renormalize: bool
    batch_size: int

    def check(self, path: str) -> None:
        super().check(path)
        if self.threshold == "calibrated":
            fail(f"{path}.threshold", "the Fuyu judge has no calibrated threshold: give a number")
        at_least(f"{path}.batch_size", self.batch_size, 1)


@dataclass(kw_only=True)
class ClipModel:
    _target_: str
    spec: dict[str, int | bool]  # checked by genixer.models.clip when built


@dataclass(kw_only=True)
class ClipMargin:
    enabled: bool
    stride: float
    max_iou: float

    def check(self, path: str) -> None:
        if self.stride <= 0:
            fail(f"{path}.stride", f"must be > 0, got {self.stride}")
        if not 0.0 <= self.max_iou < 1.0:
            fail(f"{path}.max_iou", f"must lie in [0, 1), got {self.max_iou}")


@dataclass(kw_only=True)
class ClipFilterConfig(FilterBase):
    checkpoint: str | None
    model: ClipModel
    train: PatchPretrain  # contrastive: steps, batch_size, lr
    score_mode: Literal["cosine", "raw_dot"]
    margin: ClipMargin
    min_crop_px: int
    batch_size: int

    def check(self, path: str) -> None:
        super().check(path)
        if self.threshold == "calibrated" and self.margin.enabled:
            fail(
                f"{path}.threshold",
                "calibrated is a similarity; margin scores (filter.margin.enabled) need a "
                "margin threshold, e.g. 0: the box fits its expression best",
            )
        if self.threshold == "calibrated" and self.checkpoint:
            fail(f"{path}.threshold", "a checkpoint has no calibration: give a number")
        at_least(f"{path}.min_crop_px", self.min_crop_px, 1)
        at_least(f"{path}.batch_size", self.batch_size, 1)


@dataclass(kw_only=True)
class OracleFilterConfig(FilterBase):
    target_auroc: float  # the blurred verdicts' AUROC against the truth
    needs_ground_truth = True  # refused on a world without scenes (the run config checks)

    def check(self, path: str) -> None:
        super().check(path)
        if not 0.5 < self.target_auroc <= 1.0:
            fail(f"{path}.target_auroc", f"must lie in (0.5, 1], got {self.target_auroc}")
        if self.threshold == "calibrated":
            fail(f"{path}.threshold", "the oracle has no calibrated threshold: give a number")


@dataclass(kw_only=True)
class VlmJudgeConfig(FilterBase):
    checkpoint: str | None  # required; null only to fail here with the reason
    train: JudgeTrain | None
    renormalize: bool
    batch_size: int

    def check(self, path: str) -> None:
        super().check(path)
        if not self.checkpoint:
            fail(
                f"{path}.checkpoint",
                "filter=vlm_judge needs a local image-text-to-text model folder; a tiny one "
                "for the built-in world: python -m genixer.models.hf.tiny qwen2_vl DIR",
            )
        if self.threshold == "calibrated":
            fail(f"{path}.threshold", "the vlm judge has no calibrated threshold: give a number")
        at_least(f"{path}.batch_size", self.batch_size, 1)


FILTERS = {
    "genixer.filters.fuyu.FuyuFilter": FuyuFilterConfig,
    "genixer.filters.clip.ClipFilter": ClipFilterConfig,
    "genixer.filters.none.NoFilter": NoFilterConfig,
    "genixer.filters.oracle.OracleFilter": OracleFilterConfig,
    "genixer.filters.vlm_judge.VlmJudgeFilter": VlmJudgeConfig,
}
