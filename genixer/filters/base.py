"""One interface for every data filter: train it (or load a checkpoint), score records, say
what it keeps.

A filter is built from ``conf/filter/<name>.yaml`` (its ``_target_``). The pipeline runs
it through three stages: ``train_stage`` (a cache stage named by the filter, e.g.
``train_judge``: train, or copy a checkpoint), ``score`` (one score per record into
``scores.jsonl``, and the judge-quality numbers for the summary) and ``select`` (the band or
threshold). A filter that scores nothing (``none``) has no train or score key and keeps
every record. To add a filter: subclass :class:`Filter`, write its YAML; nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from genixer.core.record import Record, read_jsonl
from genixer.evaluation.metrics import auroc
from genixer.world.base import WorldImage

SCORES = "scores.jsonl"


@dataclass(frozen=True)
class FilterEnv:
    """What a filter may use to train and score: the world, its splits, the project
    tokenizer (None where the filter does not read the collection), the Lightning trainer
    config, how often training checkpoints, and the run's seed."""

    world: Path
    splits: Mapping[str, list[WorldImage]]
    tokenizer: Any
    trainer: Any
    checkpoint_every: int
    seed: int


class Filter:
    """The interface; the defaults are those of a filter with nothing to train or score."""

    train_stage: ClassVar[str | None] = None  # the cache stage that trains / loads it
    train_version: ClassVar[int] = 1  # bump when training changes what it writes
    train_reads: ClassVar[Mapping[str, str]] = {"world": "world"}

    def __init__(self, *, name: str, band: list[float] | None, threshold: float | str | None):
        self.name = name  # the summary's ``filter.name``
        self.band = band
        self.threshold = threshold

    def check(self) -> None:
        """Refuse, before any stage runs, what training or scoring would fail on (a model
        folder that cannot load), with the reason."""

    def train_key(self, seed: int, trainer_key: dict) -> dict | None:
        """The config that decides the trained filter; None: nothing to train."""
        return None

    def train(self, env: FilterEnv, folder: Path) -> dict:
        raise NotImplementedError

    def score_key(self, seed: int) -> dict | None:
        """The config that decides the scores (besides the trained filter); None: no scores."""
        return None

    def score(
        self, env: FilterEnv, trained: Path | None, records: list[Record], folder: Path
    ) -> dict:
        """Write ``{"id", "score"}`` per record (None: not scorable) to ``folder/scores.jsonl``;
        return counts and :func:`score_quality`."""
        raise NotImplementedError

    def selection_key(self) -> dict:
        return {"band": self.band, "threshold": self.threshold, "filter": self.name}

    def threshold_for(self, trained_info: dict) -> float | None:
        """The threshold to select with: the configured number, or, for ``calibrated``, the
        one the trained filter found."""
        if self.threshold != "calibrated":
            return self.threshold
        found = trained_info.get("calibrated_threshold")
        if found is None:
            raise ValueError(
                "filter.threshold=calibrated needs a filter trained here (a checkpoint has no "
                "calibration): give a number"
            )
        return float(found)


def read_scores(folder: Path) -> dict[str, float]:
    """Record id -> score, for the records that have one."""
    return {r["id"]: r["score"] for r in read_jsonl(folder / SCORES) if r["score"] is not None}


def score_quality(records: list[Record], scores: dict[str, float]) -> dict:
    """The judge's quality where the world knows the truth: AUROC of the scores against the
    oracle verdicts (None without labels)."""
    judged = [(scores[r.id], r.oracle) for r in records if r.oracle is not None and r.id in scores]
    value = auroc([s for s, _ in judged], [bool(o) for _, o in judged]) if judged else None
    return {"auroc": round(value, 4) if value is not None else None, "scored": len(scores)}
