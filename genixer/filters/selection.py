"""Selection: a band or threshold over the filter's scores keeps some records, then a
share of them (the data-scale ablation).

With ``select.stratify`` the threshold or band is applied within each stratum of the records
(their task, or task and question kind) as a quantile of that stratum's scores. A judge
scores question kinds more than truth: on the quickstart a P(Yes) >= 0.5 threshold kept 86%
counting questions, and the downstream model lost on the kinds it no longer saw. So the
global threshold (or band) is turned into the quantile range of the scored records it
selects, and every stratum keeps that same range of its own records. What the threshold
means (how picky) stays; which kinds survive no longer depends on how the judge ranks kinds
against each other. A per-stratum calibrated threshold would need labels per stratum;
quantiles need none."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

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
    *,
    stratify: str | None = None,
) -> tuple[list[Record], dict]:
    """Keep what the band or threshold passes (within each stratum when ``stratify``, see
    :mod:`genixer.filters.strata`), then ``fraction`` of it (see :func:`subsample`)."""
    if stratify is not None and scores is not None:
        passed = select_within_strata(records, scores, band, threshold, by=stratify)
    else:
        passed = [
            r
            for r in records
            if in_selection(scores.get(r.id) if scores else None, band, threshold)
        ]
    kept = subsample(passed, fraction)
    judged = [r.oracle for r in kept if r.oracle is not None]
    info = {
        "num_passed": len(passed),
        "num_kept": len(kept),
        "kept_share": round(len(kept) / max(1, len(records)), 4),
        "oracle_accuracy": round(sum(judged) / len(judged), 4) if judged else None,
    }
    if stratify is not None:
        info["strata"] = strata_shares(records, kept, stratify)
    return kept, info


STRATIFY = ("task", "kind")


def stratum(rec: Record, by: str) -> str:
    """``task``: the record's task. ``kind``: also its first question's kind, where the
    task's parser knows it (real data without kinds falls back to the task)."""
    kind = rec.turns[0].kind if rec.turns else None
    if by == "task" or not kind or kind == "unknown":
        return rec.task
    return f"{rec.task}:{kind}"


def quantile_range(scores: list[float], band, threshold) -> tuple[float, float]:
    """The share of the scored records below what the selection keeps, and the share below
    its top: ``[q_lo, q_hi)`` of the ranks, ascending by score."""
    n = max(1, len(scores))
    kept = [s for s in scores if in_selection(s, band, threshold)]
    if not kept:
        return 0.0, 0.0
    low, high = min(kept), max(kept)
    return sum(s < low for s in scores) / n, sum(s <= high for s in scores) / n


def select_within_strata(
    records: list[Record], scores: dict[str, float], band, threshold, *, by: str
) -> list[Record]:
    """Every stratum keeps its ranks in the global selection's quantile range (ties broken by
    record id, so the result does not depend on input order); records in input order."""
    scored = [r for r in records if scores.get(r.id) is not None]
    q_lo, q_hi = quantile_range([scores[r.id] for r in scored], band, threshold)
    groups: dict[str, list[Record]] = defaultdict(list)
    for rec in scored:
        groups[stratum(rec, by)].append(rec)
    chosen: set[str] = set()
    for members in groups.values():
        ranked = sorted(members, key=lambda r: (scores[r.id], r.id))
        start, stop = round(q_lo * len(ranked)), round(q_hi * len(ranked))
        chosen.update(r.id for r in ranked[start:stop])
    return [r for r in records if r.id in chosen]


def strata_shares(records: list[Record], kept: list[Record], by: str) -> dict:
    """Each stratum's share of the generated records beside its share of the kept ones."""
    generated = Counter(stratum(r, by) for r in records)
    selected = Counter(stratum(r, by) for r in kept)
    n, k = max(1, len(records)), max(1, len(kept))
    return {
        s: {
            "generated": generated[s],
            "kept": selected[s],
            "generated_share": round(generated[s] / n, 4),
            "kept_share": round(selected[s] / k, 4),
        }
        for s in sorted(generated)
    }
