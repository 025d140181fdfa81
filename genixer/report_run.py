"""Tracking a pipeline run: MLflow run (nested under a sweep's parent in multirun), the
summary file, the sample grid, and the last printed line (the summary's path)."""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from genixer.pipeline import write_summary
from genixer.record import read_jsonl, read_records
from genixer.utils import build
from genixer.world.base import load_image

log = logging.getLogger(__name__)


def _sweep_context() -> tuple[str | None, str | None, list[str]]:
    """(sweep id, job name, overrides) when running under Hydra."""
    if not HydraConfig.initialized():
        return None, None, []
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    if hc.mode == RunMode.MULTIRUN:
        return str(Path(hc.sweep.dir).resolve()), f"job{hc.job.num}", overrides
    return None, None, overrides


def sample_grid(summary: dict, out_dir: Path, n: int = 12) -> Path | None:
    if "generation" not in summary:
        return None
    path = Path(summary["generation"]["records"])
    if not path.exists():
        return None
    records = read_records(path)
    if not records:
        return None
    scores = {}
    if summary.get("filter", {}).get("scores"):
        scores = {d["id"]: d["score"] for d in read_jsonl(summary["filter"]["scores"])}
    chosen = random.Random(0).sample(records, min(n, len(records)))
    from genixer.viz import draw_grid

    world_root = Path(summary["world_root"])
    items = []
    for r in chosen:
        lines = []
        for t in r.turns:
            lines += [f"Q: {t.question}"]
            if t.options:
                lines += [f"   {chr(65 + i)}. {o}" for i, o in enumerate(t.options)]
            lines += [f"A: {t.answer}"]
        score = scores.get(r.id)
        if score is not None:
            lines.append(f"filter score {score:.2f}")
        verdict = {True: "true", False: "false", None: "n/a (no labels)"}[r.oracle]
        lines.append(f"oracle: {verdict}")
        img = load_image(world_root, r.image)
        items.append(
            {"image": img, "title": f"{r.task} {r.id[:8]}", "lines": lines, "ok": r.oracle}
        )
    return Path(draw_grid(items, out_dir / "samples.png"))


def finish_run(cfg: DictConfig, run: Callable[[], dict]) -> Path:
    out_dir = Path(cfg.paths.output_dir)
    tracker = build(cfg.logger) if cfg.get("logger") and "_target_" in cfg.logger else None
    sweep_id, job_name, overrides = _sweep_context()
    run_id = parent = None
    if tracker is not None:
        if sweep_id is not None:
            parent = tracker.find_or_create_parent(None, sweep_id, run_name=Path(sweep_id).name)
        run_id = tracker.start_run(
            job_name or out_dir.name,
            parent_run_id=parent,
            tags={"genixer.overrides": " ".join(overrides)},
        )
        tracker.log_params(run_id, OmegaConf.to_container(cfg, resolve=True))
    try:
        summary = run()
    except BaseException:
        if tracker is not None:
            (out_dir / "error.txt").parent.mkdir(parents=True, exist_ok=True)
            (out_dir / "error.txt").write_text(traceback.format_exc())
            tracker.log_artifact(run_id, str(out_dir / "error.txt"))
            tracker.end_run(run_id, "FAILED")
        raise
    summary["overrides"] = overrides
    if tracker is not None:
        summary["mlflow"] = {
            "run_id": run_id,
            "parent_run_id": parent,
            "where": tracker.run_url_or_uri(run_id),
        }
    path = write_summary(summary, out_dir)
    grid = None
    try:
        grid = sample_grid(summary, out_dir)
    except Exception as err:  # a picture must not fail a finished run; say so
        log.warning("could not draw the sample grid: %s", err)
    if tracker is not None:
        metrics = {k: v for k, v in summary.items() if k not in ("stages", "mlflow", "overrides")}
        metrics["stages"] = {
            k: {"seconds": v["seconds"], "reused": v["status"] == "reused"}
            for k, v in summary["stages"].items()
        }
        tracker.log_metrics(run_id, metrics)
        tracker.log_artifact(run_id, str(path))
        if grid is not None:
            tracker.log_artifact(run_id, str(grid))
        tracker.end_run(run_id, "FINISHED")
        log.info("MLflow run: %s", summary["mlflow"]["where"])
    if "export" in summary:
        log.info("exported dataset: %s", summary["export"]["llava_json"])
    return path
