"""What a sweep leaves in its folder for its jobs and its report: ``sweep.json`` (where its
runs are: the MLflow store, experiment and parent run) and each failed job's ``error.txt``."""

from __future__ import annotations

import json
import os
from pathlib import Path

SWEEP_RECORD = "sweep.json"
ERROR_FILE = "error.txt"


def write_sweep_record(
    sweep_dir: Path, tracking_uri: str, experiment_name: str, parent_run_id: str
) -> Path:
    """Write (atomically) where the sweep's runs are; every job writes the same content."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / SWEEP_RECORD
    data = {
        "sweep_dir": str(sweep_dir),
        "tracking_uri": tracking_uri,
        "experiment_name": experiment_name,
        "parent_run_id": parent_run_id,
    }
    tmp = path.with_name(f"{SWEEP_RECORD}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_sweep_record(sweep_dir: Path) -> dict | None:
    path = Path(sweep_dir) / SWEEP_RECORD
    if not path.exists():
        return None
    return json.loads(path.read_text())
