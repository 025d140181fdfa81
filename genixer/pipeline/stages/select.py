"""The select stage: the band or threshold over the scores (every record without a
filter), then ``select.fraction`` of what passed (the data-scale ablation)."""

from __future__ import annotations

from pathlib import Path

from genixer.core.record import write_jsonl
from genixer.filters.base import read_scores
from genixer.filters.selection import select
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.dedup import read_deduplicated

SELECTED = "selected.jsonl"


class Select(Stage):
    name, version, phase = "select", 1, "select"
    reads = {"generate": "dedup", "score": "score"}

    def __init__(self, train_stage: str) -> None:
        self.uses = {"trained": train_stage}  # a calibrated threshold comes from its training

    def key(self, ctx: RunContext) -> dict:
        key = ctx.filter.selection_key() | {"fraction": float(ctx.cfg.select.fraction)}
        if ctx.cfg.select.stratify is not None:  # absent when off: earlier keys stay valid
            key["stratify"] = ctx.cfg.select.stratify
        return key

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        records = read_deduplicated(inputs["generate"].path)
        scores = read_scores(inputs["score"].path) if "score" in inputs else None
        trained = inputs["trained"].info if "trained" in inputs else {}
        f = ctx.filter
        s = ctx.cfg.select
        threshold = f.threshold_for(trained)
        kept, info = select(
            records, scores, f.band, threshold, float(s.fraction), stratify=s.stratify
        )
        write_jsonl(folder / SELECTED, (r.to_json() for r in kept))
        return info

    def summarize(self, ctx: RunContext, results) -> dict:
        block = {"name": ctx.filter.name}
        if "score" not in results:  # the score stage's block says these otherwise
            block |= {"auroc": None, "scores": None}
        selected = str(results["select"].path / SELECTED)  # what the viewer reads
        return {"filter": block, "select": results["select"].info | {"records": selected}}
