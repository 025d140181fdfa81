"""The score stage: the trained filter scores every deduplicated record (``scores.jsonl``)
and, where the world knows the truth, its AUROC against the oracle is measured."""

from __future__ import annotations

from pathlib import Path

from genixer.filters.base import SCORES, Filter
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.dedup import read_deduplicated
from genixer.pipeline.stages.train_filter import filter_env


class Score(Stage):
    name, version, phase = "score", 1, "select"
    uses = {"world": "world", "collect": "collect"}

    def __init__(self, filter_: Filter) -> None:
        self.reads = {"judge": filter_.train_stage or "train_filter", "generate": "dedup"}

    def key(self, ctx: RunContext) -> dict | None:
        return ctx.filter.score_key(ctx.seed)

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        records = read_deduplicated(inputs["generate"].path)
        trained = inputs["judge"].path if "judge" in inputs else None  # the oracle trains nothing
        return ctx.filter.score(filter_env(ctx, inputs), trained, records, folder)

    def summarize(self, ctx: RunContext, results) -> dict:
        scored = results["score"]
        return {"filter": {"auroc": scored.info.get("auroc"), "scores": str(scored.path / SCORES)}}
