"""A run's ``summary.json``: each stage's own block (what was generated, kept, learned),
the merged skip ledger, and how each stage ran (re-used or not, how long, at what rate)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from genixer.core.hashing import config_hash
from genixer.core.ledger import LEDGER, merge_ledgers
from genixer.pipeline.cache import StageResult
from genixer.pipeline.stage import RunContext, Stage


def assemble_summary(
    ctx: RunContext, stages: Sequence[Stage], results: Mapping[str, StageResult], seconds: float
) -> dict:
    """The summary of a run that reached the stages in ``results``: one block per stage."""
    summary: dict = {}
    for stage in stages:
        if stage.name in results:
            merge_into(summary, stage.summarize(ctx, results))
    summary["skipped"] = merge_ledgers(  # every stage's skip ledger, in one file
        [r.path for r in results.values()], run_ledger_path(ctx.cfg, results)
    )
    summary["stages"] = {k: v.summary() | stage_rates(v.info) for k, v in results.items()}
    summary["wall_seconds"] = round(seconds, 1)
    return summary


def merge_into(summary: dict, block: Mapping) -> None:
    """Merge ``block`` into ``summary``; blocks of several stages share a key (``generation``)."""
    for key, value in block.items():
        if isinstance(value, Mapping) and isinstance(summary.get(key), dict):
            merge_into(summary[key], value)
        else:
            summary[key] = value


def stage_rates(info: dict) -> dict:
    """``stages.<name>.images_per_s`` / ``tokens_per_s``: what the stage measured itself
    (generation, scoring, one training run), or, for a stage of several training phases,
    their examples and tokens over their training time; None where it has no such rate."""
    images, tokens = info.get("images_per_s"), info.get("tokens_per_s")
    phases = [v for v in info.values() if isinstance(v, dict) and v.get("train_seconds")]
    if images is None and phases:
        seconds = sum(p["train_seconds"] for p in phases)
        images = round(sum(p.get("images_seen", 0) for p in phases) / seconds, 1)
        tokens = round(sum(p.get("tokens_seen", 0) for p in phases) / seconds, 1)
    return {"images_per_s": images, "tokens_per_s": tokens}


def run_ledger_path(cfg, results: Mapping[str, StageResult]) -> Path:
    """Where a run's merged ledger goes: ``<paths.output_dir>/skipped.jsonl``; when no output
    folder resolves (a pipeline run outside Hydra's app), a cache folder named by the keys
    of the stages the run used."""
    out = OmegaConf.select(cfg, "paths.output_dir", default=None, throw_on_resolution_failure=False)
    if out:
        return Path(out) / LEDGER
    key = config_hash(sorted((name, r.key) for name, r in results.items()))
    return Path(cfg.paths.cache_dir) / "runs" / key / LEDGER
