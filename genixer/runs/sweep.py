"""Sweeps (Hydra multirun): the MLflow parent run, what the jobs leave in the sweep folder,
and the end of a sweep.

:class:`SweepCallback` (``hydra.callbacks.sweep`` in ``conf/config.yaml``) creates the sweep's
parent run before the first job and records the store and the parent in
``<sweep dir>/sweep.json``; each job's run is its child (a job finds the parent by the sweep
folder, and creates it if the callback could not). A job that crashes leaves its traceback
in ``<job dir>/error.txt``, its child run ends FAILED, and the sweep goes on. When every job
is done the callback writes the report (:mod:`genixer.runs.report`) to the sweep folder and the
parent's artifacts, ends the parent run, and makes the process exit non-zero if any job
failed.

This module is imported by Hydra in every run: keep its imports light.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from genixer.runs.sweep_record import ERROR_FILE, read_sweep_record, write_sweep_record  # noqa: F401

log = logging.getLogger(__name__)


def sweep_name(sweep_id: str, hydra_cfg) -> str:
    """The parent run's name: the experiment (if any) and the sweep folder's last two parts."""
    experiment = OmegaConf.select(hydra_cfg, "runtime.choices.experiment", default=None)
    where = "/".join(Path(sweep_id).parts[-2:])
    return f"{experiment} {where}" if experiment and experiment != "null" else where


def failed_jobs(sweep_dir: Path) -> list[tuple[str, str]]:
    """(job folder name, the error's last line) for each job folder holding an ``error.txt``."""
    out = []
    for err in sorted(Path(sweep_dir).rglob(ERROR_FILE)):
        lines = [x for x in err.read_text().splitlines() if x.strip()]
        name = str(err.parent.relative_to(sweep_dir))
        out.append((name, lines[-1] if lines else "unknown error"))
    return out


def _sweep_params(config: DictConfig) -> dict[str, Any]:
    hydra = config.hydra
    params = OmegaConf.select(hydra, "sweeper.params", default=None)
    out: dict[str, Any] = {
        "overrides": " ".join(OmegaConf.to_container(hydra.overrides.task, resolve=False))
    }
    if params:
        out["grid"] = OmegaConf.to_container(params, resolve=False)
    return out


def close_sweep(sweep_dir: Path, failed: list) -> dict | None:
    """Write the report, end the parent run (FAILED if a job failed).

    Returns the report's paths, or None when the sweep was not tracked (``logger=none``).
    """
    record = read_sweep_record(sweep_dir)
    if record is None:
        log.info("sweep %s was not tracked in MLflow: no report", sweep_dir)
        return None
    from genixer.runs.report import make_report
    from genixer.runs.tracking import Tracker

    tracker = Tracker(record["tracking_uri"], record["experiment_name"])
    parent = record["parent_run_id"]
    paths = None
    try:
        paths = make_report(record["tracking_uri"], parent, sweep_dir)
        log.info("sweep report: %s", paths["markdown"])
    except Exception as err:  # a report must not hide the sweep's outcome; say why it is missing
        log.warning("could not write the sweep report: %s", err)
    tracker.set_tags(parent, {"genixer.failed_jobs": len(failed)})
    tracker.end_run(parent, "FAILED" if failed else "FINISHED")
    log.info("MLflow parent run: %s", tracker.run_url_or_uri(parent))
    return paths


def open_sweep(sweep_dir: Path, config: DictConfig) -> str | None:
    """Create the sweep's parent run before any job starts (jobs launched in parallel, e.g.
    on Slurm, then all find this one) and log the sweep's grid on it. None: not tracked."""
    if "_target_" not in (config.get("logger") or {}):
        return None
    from hydra.core.hydra_config import HydraConfig

    from genixer.core.build import build

    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    hydra_config.set_config(config)  # so that ${hydra:...} in the logger's config resolves
    try:
        tracker = build(config.logger)
    finally:
        hydra_config.cfg = before
    parent = tracker.find_or_create_parent(
        None, str(sweep_dir), run_name=sweep_name(str(sweep_dir), config.hydra)
    )
    write_sweep_record(sweep_dir, tracker.tracking_uri, tracker.experiment_name, parent)
    try:
        tracker.log_params(parent, {"sweep": _sweep_params(config)})
    except Exception as err:  # params are immutable: a re-used sweep folder keeps the first
        log.warning("could not log the sweep's params on run %s: %s", parent, err)
    return parent


class SweepCallback(Callback):
    """A multirun's start (the MLflow parent run) and end (report, parent run closed,
    non-zero exit if a job failed)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        try:
            open_sweep(sweep_dir, config)
        except Exception as err:  # the jobs create the parent themselves then
            log.warning("could not create the sweep's MLflow parent run up front: %s", err)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        failed = failed_jobs(sweep_dir)
        try:
            close_sweep(sweep_dir, failed)
        except Exception as err:
            log.error("could not close the sweep's MLflow parent run: %s", err)
        if failed:
            lines = [f"{len(failed)} job(s) of the sweep in {sweep_dir} failed:"]
            lines += [f"  job {name}: {error}" for name, error in failed]
            print("\n".join(lines), file=sys.stderr)
            # SystemExit, not an exception: Hydra turns a callback's exceptions into warnings.
            sys.exit(1)
