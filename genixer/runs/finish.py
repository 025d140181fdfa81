"""Tracking a pipeline run: MLflow run (nested under a sweep's parent in multirun), the
summary file, the sample grid, the record viewer (``viewer/``), and the last printed line
(the summary's path)."""

from __future__ import annotations

import json
import logging
import os
import random
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from genixer.core.build import build
from genixer.core.record import read_jsonl, read_records
from genixer.runs.sweep import sweep_name
from genixer.runs.sweep_record import ERROR_FILE, write_sweep_record
from genixer.runs.viewer import VIEWER, build_viewer
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
    from genixer.runs.viz import draw_grid

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


def _override_params(overrides: list[str]) -> dict[str, str]:
    """``key=value`` overrides as params ``override.<key>`` (the job's place in the grid)."""
    out = {}
    for o in overrides:
        key, _, value = o.partition("=")
        out[key.lstrip("+~")] = value
    return out


def _record_failure(out_dir: Path, tracker, run_id: str | None, status: str) -> str:
    """Write the traceback to ``error.txt`` (and the MLflow run), end the run with ``status``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = traceback.format_exc()
    (out_dir / ERROR_FILE).write_text(text)
    error = text.strip().splitlines()[-1] if text.strip() else "unknown error"
    if tracker is not None and run_id is not None:
        tracker.set_tags(run_id, {"genixer.error": error})
        tracker.log_artifact(run_id, str(out_dir / ERROR_FILE))
        tracker.end_run(run_id, status)
    return error


def finish_run(cfg: DictConfig, run: Callable[[], dict]) -> Path | None:
    """Run the pipeline inside its MLflow run; return the summary's path.

    In a multirun a crashed job is recorded (``error.txt``, its run FAILED with the error)
    and None is returned, so that Hydra goes on with the next job; the sweep's end
    (:class:`genixer.runs.sweep.SweepCallback`) makes the exit status say so. A single run raises.
    """
    out_dir = Path(cfg.paths.output_dir)
    (out_dir / ERROR_FILE).unlink(missing_ok=True)  # a re-run in the same folder starts clean
    tracker = build(cfg.logger) if cfg.get("logger") and "_target_" in cfg.logger else None
    sweep_id, job_name, overrides = _sweep_context()
    run_id = parent = None
    if tracker is not None:
        if sweep_id is not None:
            parent = tracker.find_or_create_parent(
                None, sweep_id, run_name=sweep_name(sweep_id, HydraConfig.get())
            )
            write_sweep_record(
                Path(sweep_id), tracker.tracking_uri, tracker.experiment_name, parent
            )
        run_id = tracker.start_run(
            job_name or out_dir.name,
            parent_run_id=parent,
            tags={
                "genixer.overrides": " ".join(overrides),
                "genixer.overrides_json": json.dumps(overrides),
                "genixer.output_dir": str(out_dir.resolve()),
            },
        )
        tracker.log_params(run_id, OmegaConf.to_container(cfg, resolve=True))
        if overrides:
            tracker.log_params(run_id, {"override": _override_params(overrides)})
    try:
        tracked = {"tracker": tracker, "run_id": run_id, "parent": parent}
        return _complete(run(), out_dir, overrides=overrides, **tracked)
    except Exception:
        error = _record_failure(out_dir, tracker, run_id, "FAILED")
        if sweep_id is None:
            raise
        log.error("job %s failed, the sweep goes on: %s", job_name, error)
        return None
    except BaseException:  # interrupted (Ctrl-C): recorded, and the sweep stops
        _record_failure(out_dir, tracker, run_id, "KILLED")
        raise


def _complete(summary: dict, out_dir: Path, *, overrides, tracker, run_id, parent) -> Path:
    """A finished run: summary.json, the sample grid, metrics and artifacts, run FINISHED."""
    summary["overrides"] = overrides
    if tracker is not None:
        summary["mlflow"] = {
            "run_id": run_id,
            "parent_run_id": parent,
            "where": tracker.run_url_or_uri(run_id),
        }
    path = write_summary(summary, out_dir)
    grid = viewer = None
    try:
        grid = sample_grid(summary, out_dir)
    except Exception as err:  # a picture must not fail a finished run; say so
        log.warning("could not draw the sample grid: %s", err)
    if "generation" in summary:
        try:
            viewer = build_viewer(path).parent
        except Exception as err:  # nor may its viewer
            log.warning("could not write the record viewer: %s", err)
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
        if viewer is not None:
            tracker.log_artifact(run_id, str(viewer), VIEWER)
        tracker.end_run(run_id, "FINISHED")
        log.info("MLflow run: %s", summary["mlflow"]["where"])
    if "export" in summary:
        log.info("exported dataset: %s", summary["export"]["llava_json"])
    return path


def write_summary(summary: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path
