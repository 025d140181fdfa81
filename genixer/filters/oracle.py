"""The oracle filter (``filter=oracle``): a judge of known quality, for worlds with ground
truth only. Each record's score is its oracle verdict blurred by seeded noise so that the
scores' AUROC against the verdicts is ``target_auroc`` (1.0: the exact oracle), which makes
the judge's quality an axis of an experiment (``experiment=judge_quality_sweep``).

With the verdict ``y`` in {0, 1} and ``z`` a standard normal draw seeded by the record's id,
the score is ``Phi(y - 0.5 + sigma * z)``: two unit-apart normals of spread ``sigma``, whose
AUROC is ``Phi(1 / (sigma * sqrt(2)))``, so ``sigma = 1 / (sqrt(2) * Phi^-1(target))``.
``Phi`` maps the scores into (0, 1), where 0.5 splits an exact oracle's verdicts.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from statistics import NormalDist

from genixer.core.record import Record, stable_seed, write_jsonl
from genixer.filters.base import SCORES, Filter, FilterEnv, score_quality

_NORMAL = NormalDist()


def noise_scale(target_auroc: float) -> float:
    """The spread of the noise whose blurred verdicts have AUROC ``target_auroc``."""
    if not 0.5 < target_auroc <= 1.0:
        raise ValueError(f"filter.target_auroc must lie in (0.5, 1], got {target_auroc}")
    if target_auroc == 1.0:
        return 0.0
    return 1.0 / (math.sqrt(2.0) * _NORMAL.inv_cdf(target_auroc))


def blurred_score(verdict: bool, sigma: float, seed: int) -> float:
    z = random.Random(seed).gauss(0.0, 1.0)
    return _NORMAL.cdf(float(verdict) - 0.5 + sigma * z)


class OracleFilter(Filter):
    """Nothing to train; scores from the records' oracle verdicts."""

    def __init__(
        self,
        *,
        name: str,
        target_auroc: float,
        band: list[float] | None,
        threshold: float | str | None,
    ):
        super().__init__(name=name, band=band, threshold=threshold)
        self.target_auroc = float(target_auroc)
        self.sigma = noise_scale(self.target_auroc)

    def score_key(self, seed: int) -> dict:
        return {"filter": "oracle", "target_auroc": self.target_auroc, "seed": seed}

    def score(
        self, env: FilterEnv, trained: Path | None, records: list[Record], folder: Path
    ) -> dict:
        unknown = [r.id for r in records if r.oracle is None]
        if unknown:
            raise ValueError(
                f"filter=oracle needs oracle verdicts, and {len(unknown)} records have none "
                "(a world without ground truth, e.g. world=folder): use filter=fuyu or clip"
            )
        scores = {
            r.id: blurred_score(r.oracle, self.sigma, stable_seed(env.seed, "oracle", r.id))
            for r in records
        }
        write_jsonl(folder / SCORES, [{"id": r.id, "score": scores[r.id]} for r in records])
        return score_quality(records, scores) | {"target_auroc": self.target_auroc}
