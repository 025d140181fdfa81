"""A pipeline run's ``summary.json``: what was generated, kept, learned, and how each stage
ran (re-used or not, how long, at what rate)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from genixer.skips import merge_ledgers, run_ledger_path
from genixer.stages import dedup as DD
from genixer.stages import export as E
from genixer.stages import generate as G
from genixer.stages import score as S
from genixer.stages.rates import stage_rates


def build_summary(p, seconds: float) -> dict:
    """The summary of pipeline ``p`` (a :class:`genixer.pipeline.Pipeline` that has run as
    far as its ``stop_after``): one block per stage it reached."""
    # Compare with what the generator saw for the task it was asked for.
    task = p.cfg.task.name
    info = p.collect.info
    training_shares = (
        info["kind_shares"] if task == "generic" else info["kind_shares_by_task"][task]
    )
    summary: dict = {"world_root": str(p.world.path)}
    if hasattr(p, "generated"):
        gen = p.generated.info
        summary["generation"] = {
            "num_records": gen["num_records"],
            "parse_failures": gen["parse_failures"],
            "parse_failure_reasons": gen["parse_failure_reasons"],
            "oracle_accuracy": gen["oracle_accuracy"],
            "oracle_errors": gen.get("oracle_errors"),  # absent from older cached stages
            "task_mix": gen["task_mix"],
            "diversity": G.diversity(gen, training_shares),
            "images_per_s": gen.get("images_per_s"),
            "records": str(p.generated.path / G.RECORDS),
        }
    if hasattr(p, "deduped"):
        summary["generation"] |= DD.summary_block(p.deduped, getattr(p, "decontaminated", None))
    if hasattr(p, "selected"):
        scored = p.scores is not None
        summary["filter"] = {
            "name": p.cfg.filter.name,
            "auroc": p.scored.info.get("auroc") if scored else None,
            "scores": str(p.scored.path / S.SCORES) if scored else None,
        }
        summary["select"] = p.selected.info
    if hasattr(p, "exported"):
        summary["export"] = {
            "llava_json": str(p.exported.path / E.LLAVA_JSON),
            "entries": p.exported.info["entries"],
        }
        if "shikra_rec" in p.exported.info:
            summary["export"]["shikra_rec_jsonl"] = str(p.exported.path / E.SHIKRA_REC)
            summary["export"]["shikra_rec"] = p.exported.info["shikra_rec"]
    if hasattr(p, "synthetic"):
        syn, base = p.synthetic.info, p.baseline.info
        summary["downstream"] = {
            "accuracy": syn["accuracy"],
            "baseline_accuracy": base["accuracy"],
            "gain": round(syn["accuracy"] - base["accuracy"], 4),
            "per_category": syn["per_category"],
            "baseline_per_category": base["per_category"],
        }
    summary["skipped"] = merge_ledgers(  # every stage's skip ledger, in one file
        [r.path for r in p.results.values()],
        run_ledger_path(p.cfg, p.results),
    )
    summary["stages"] = {k: v.summary() | stage_rates(v.info) for k, v in p.results.items()}
    summary["wall_seconds"] = round(seconds, 1)
    return summary


def write_summary(summary: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path
