"""Experiment tracking with MLflow, through explicit run ids.

Everything goes through one :class:`mlflow.MlflowClient` and explicit run ids instead of
MLflow's fluent global "active run", so that several runs (a Hydra multirun sweep: one parent
and one child per job) never step on each other's state.

Defaults: with no tracking URI, runs go to ``sqlite:///<cwd>/mlflow.db`` (MLflow 3.17 refuses a
``file:`` store unless ``MLFLOW_ALLOW_FILE_STORE=true``, so it is never used here).
"""

from __future__ import annotations

import logging
import numbers
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)

# Limits of MLflow 3.17 (mlflow.utils.validation); checked against the installed version.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

PARENT_RUN_TAG = "mlflow.parentRunId"
SWEEP_ID_TAG = "genixer.sweep_id"
ROLE_TAG = "genixer.role"
SWEEP_PARENT_ROLE = "sweep_parent"

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")
_STATUSES = ("FINISHED", "FAILED", "KILLED")


def default_tracking_uri(root: str | os.PathLike[str] | None = None) -> str:
    """Return ``sqlite:///<abs root>/mlflow.db`` (``root`` defaults to the working directory)."""
    base = Path(root) if root is not None else Path.cwd()
    return "sqlite:///" + str((base / "mlflow.db").resolve())


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, object]:
    """Flatten nested mappings into one level with dotted keys.

    ``{"a": {"b": 1}, "c": [1, 2]}`` becomes ``{"a.b": 1, "c": [1, 2]}``: mappings are walked,
    every other value (lists included) is kept as it is. An empty nested mapping is kept as
    ``{}`` under its own key so that it is not lost silently.
    """
    out: dict[str, object] = {}
    for key, value in d.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def _to_plain(d: Any) -> Any:
    """Turn an OmegaConf container into plain Python (resolved); leave anything else alone."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        return d
    if isinstance(d, DictConfig | ListConfig):
        return OmegaConf.to_container(d, resolve=True)
    return d


def _clean_key(key: str) -> str:
    """Make a key MLflow accepts: allowed characters only, no '..' or leading '/', <=250 chars."""
    cleaned = _BAD_KEY_CHARS.sub("_", key)
    cleaned = re.sub(r"/+", "/", cleaned).strip("/")
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in cleaned.split("/")]
    cleaned = "/".join(parts) or "_"
    return cleaned[:MAX_KEY_LENGTH]


def _truncate(value: object, limit: int) -> str:
    text = str(value)
    if len(text) > limit:
        log.debug("truncating a value of %d chars to %d", len(text), limit)
        text = text[: limit - 3] + "..."
    return text


def _as_number(value: object) -> float | None:
    """Return ``value`` as a float if it is numeric (bools become 0/1), else ``None``."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)  # numpy / torch scalars and 1-element arrays
    if callable(item):
        try:
            inner = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        if isinstance(inner, bool | numbers.Real):
            return float(inner)
    return None


def _chunks(seq: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class Tracker:
    """A thin MLflow wrapper: one experiment, runs addressed by id.

    Args:
        tracking_uri: where runs are stored (``sqlite:///...``, ``http://host:port``...);
            ``None`` means :func:`default_tracking_uri` of the working directory.
        experiment_name: the experiment runs are created in (made if absent, restored if
            it was deleted).
        artifact_location: artifact root for a *new* experiment; ignored if it exists.
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment_name: str,
        artifact_location: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.experiment_id = self._experiment_id(experiment_name, artifact_location)

    # ----------------------------------------------------------------- experiments
    def _experiment_id(self, name: str, artifact_location: str | None = None) -> str:
        """Id of experiment ``name``, creating (or restoring) it if needed."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                log.info("restoring deleted MLflow experiment %r", name)
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        location = artifact_location
        if location is not None and "://" not in location and not location.startswith("file:"):
            location = Path(location).resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another process may have created it between the lookup and the create.
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    # ----------------------------------------------------------------- runs
    def start_run(
        self,
        run_name: str,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """Create a run (a child of ``parent_run_id`` if given) and return its id."""
        all_tags = {
            _clean_key(k): _truncate(v, MAX_TAG_VALUE_LENGTH) for k, v in (tags or {}).items()
        }
        if parent_run_id is not None:
            all_tags[PARENT_RUN_TAG] = parent_run_id
        run = self.client.create_run(
            experiment_id or self.experiment_id, tags=all_tags, run_name=run_name
        )
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log (nested) params as dotted keys; values are stringified and truncated.

        MLflow refuses to change a param once logged: logging the same key twice with a
        different value raises :class:`mlflow.exceptions.MlflowException`.
        """
        flat = flatten(_to_plain(params))
        entries: dict[str, Param] = {}
        for key, value in flat.items():
            text = _truncate(_to_plain(value), MAX_PARAM_VALUE_LENGTH)
            k = _clean_key(key)
            entries[k] = Param(k, text)  # last one wins if two keys clean to the same name
        for chunk in _chunks(list(entries.values()), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk, synchronous=True)

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log (nested) numeric metrics as dotted keys; non-numeric values are skipped."""
        now = int(time.time() * 1000)
        batch: list[Metric] = []
        for key, value in flatten(_to_plain(metrics)).items():
            number = _as_number(value)
            if number is None:
                log.debug("skipping non-numeric metric %r (%s)", key, type(value).__name__)
                continue
            batch.append(Metric(_clean_key(key), number, now, int(step or 0)))
        for chunk in _chunks(batch, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk, synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set (or overwrite) tags on a run."""
        items = [RunTag(_clean_key(k), _truncate(v, MAX_TAG_VALUE_LENGTH)) for k, v in tags.items()]
        for chunk in _chunks(items, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk, synchronous=True)

    def log_artifact(
        self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload a file (or a whole folder) as an artifact of the run."""
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(run_id, str(p), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Mark the run terminated with ``status`` (FINISHED, FAILED or KILLED)."""
        status = status.upper()
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {status!r}")
        self.client.set_terminated(run_id, status=status)

    def run_url_or_uri(self, run_id: str) -> str:
        """A human-readable pointer to the run: a UI URL for http stores, else uri + id."""
        exp_id = self.client.get_run(run_id).info.experiment_id
        uri = self.tracking_uri
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"
        if uri.startswith("sqlite:"):
            db = uri.removeprefix("sqlite:///")
            return (
                f"run {run_id} (experiment {exp_id}) in sqlite db {db}; "
                f"browse with: mlflow ui --backend-store-uri {uri}"
            )
        return f"run {run_id} (experiment {exp_id}) at {uri}"

    # ----------------------------------------------------------------- sweeps
    def find_or_create_parent(
        self, experiment_name: str | None, sweep_id: str, run_name: str | None = None
    ) -> str:
        """The id of the parent run of sweep ``sweep_id``, created on first use.

        The parent is found by its tags ``genixer.sweep_id`` and ``genixer.role``; the oldest
        match wins, so jobs of one sweep that run one after another share one parent. It is
        left RUNNING; call :meth:`end_run` on it when the sweep is over (calling it after each
        job is harmless: it only moves the end time).
        """
        if any(c in sweep_id for c in "'\"`\\"):
            raise ValueError(f"sweep_id must not contain quotes or backslashes: {sweep_id!r}")
        exp_id = (
            self.experiment_id
            if experiment_name in (None, self.experiment_name)
            else self._experiment_id(experiment_name)
        )
        filt = f"tags.`{SWEEP_ID_TAG}` = '{sweep_id}' and tags.`{ROLE_TAG}` = '{SWEEP_PARENT_ROLE}'"
        found = self.client.search_runs(
            [exp_id], filter_string=filt, max_results=1, order_by=["attributes.start_time ASC"]
        )
        if found:
            return found[0].info.run_id
        return self.start_run(
            run_name or f"sweep-{sweep_id}",
            tags={SWEEP_ID_TAG: sweep_id, ROLE_TAG: SWEEP_PARENT_ROLE},
            experiment_id=exp_id,
        )
