"""Selection: a band or threshold over the filter's scores keeps some records, then a
share of them (the data-scale ablation)."""

from __future__ import annotations

import hashlib

from genixer.core.record import Record


def in_selection(score: float | None, band, threshold) -> bool:
    """``band=[lo, hi]`` keeps lo <= s < hi (hi == 1 includes 1); else ``threshold`` keeps
    s >= threshold; neither keeps everything."""
    if band is not None:
        if score is None:
            return False
        lo, hi = band
        return lo <= score < hi or (hi >= 1.0 and score >= hi)
    if threshold is not None:
        return score is not None and score >= threshold
    return True


def subsample(records: list[Record], fraction: float) -> list[Record]:
    """The first ``round(fraction * n)`` records in an order fixed by a hash of each record's
    id: the same records every time, and a smaller share is a subset of a larger one (the
    data-scale ablation). Kept records stay in their input order."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"select.fraction must lie in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(records)
    n = round(fraction * len(records))
    rank = sorted(records, key=lambda r: hashlib.sha256(r.id.encode()).hexdigest())
    chosen = {r.id for r in rank[:n]}
    return [r for r in records if r.id in chosen]


def select(
    records: list[Record],
    scores: dict[str, float] | None,
    band,
    threshold,
    fraction: float = 1.0,
) -> tuple[list[Record], dict]:
    """Keep what the band or threshold passes, then ``fraction`` of it (see :func:`subsample`)."""
    passed = [
        r for r in records if in_selection(scores.get(r.id) if scores else None, band, threshold)
    ]
    kept = subsample(passed, fraction)
    judged = [r.oracle for r in kept if r.oracle is not None]
    return kept, {
        "num_passed": len(passed),
        "num_kept": len(kept),
        "kept_share": round(len(kept) / max(1, len(records)), 4),
        "oracle_accuracy": round(sum(judged) / len(judged), 4) if judged else None,
    }
