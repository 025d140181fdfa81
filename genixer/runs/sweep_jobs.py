"""A sweep's jobs as MLflow recorded them, grouped into settings.

A job is one child run of the sweep's parent run; a setting is the jobs that share their
values of the overrides that vary across the sweep, seeds left out, so that the repeats of
one setting (its seeds) can be summarized by a mean and a spread (:mod:`genixer.runs.report`).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

from mlflow import MlflowClient

from genixer.runs.tracking import PARENT_RUN_TAG


def is_seed_key(key: str) -> bool:
    """``seed``, ``downstream.seed``, ``world.seed``...: what varies between repeats."""
    return key == "seed" or key.endswith(".seed")


def split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


@dataclass
class Job:
    run_id: str
    name: str
    status: str
    overrides: dict[str, str]
    metrics: dict[str, float]
    error: str | None = None
    output_dir: str | None = None  # the job's run folder (its summary, its viewer)
    setting: str = ""
    seed: str = ""

    @property
    def num(self) -> int:
        digits = "".join(c for c in self.name if c.isdigit())
        return int(digits) if digits else 0


@dataclass
class Setting:
    label: str
    point: list[str] = field(default_factory=list)  # its values of the varying keys
    jobs: list[Job] = field(default_factory=list)

    @property
    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "FINISHED"]

    def values(self, metric: str) -> list[float]:
        return [j.metrics[metric] for j in self.finished if metric in j.metrics]


def _overrides_of(run) -> dict[str, str]:
    tags = run.data.tags
    if "genixer.overrides_json" in tags:
        items = json.loads(tags["genixer.overrides_json"])
    else:
        items = tags.get("genixer.overrides", "").split()
    return dict(split_override(o) for o in items)


def load_jobs(client: MlflowClient, parent_run_id: str) -> list[Job]:
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'",
        max_results=10000,
    )
    jobs = [
        Job(
            r.info.run_id,
            r.info.run_name or r.info.run_id[:8],
            r.info.status,
            _overrides_of(r),
            dict(r.data.metrics),
            error=r.data.tags.get("genixer.error"),
            output_dir=r.data.tags.get("genixer.output_dir"),
        )
        for r in runs
    ]
    return sorted(jobs, key=lambda j: (j.num, j.name))


def group(jobs: list[Job]) -> tuple[list[Setting], list[str]]:
    """Settings in sweep order; a setting is the jobs' values of the keys that vary across
    the sweep, seeds left out. Also returns those keys."""
    keys: list[str] = []
    for j in jobs:
        keys += [k for k in j.overrides if k not in keys]
    varying = [
        k for k in keys if not is_seed_key(k) and len({j.overrides.get(k) for j in jobs}) > 1
    ]
    settings: dict[str, Setting] = {}
    for j in jobs:
        j.setting = " ".join(f"{k}={j.overrides.get(k, '-')}" for k in varying) or "all jobs"
        j.seed = " ".join(f"{k}={v}" for k, v in j.overrides.items() if is_seed_key(k))
        values = [j.overrides.get(k, "-") for k in varying]
        settings.setdefault(j.setting, Setting(j.setting, values)).jobs.append(j)
    return list(settings.values()), varying


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def stage_times(jobs: list[Job]) -> tuple[float, float, list[str]]:
    """(the finished jobs' pipeline seconds, an estimate of the same jobs each with an empty
    cache: every re-used stage costs the mean time it took where it ran in this sweep, and
    the stages never run here, which the estimate leaves out).

    Measure the second number for real by giving every job its own cache
    (experiments/README.md)."""
    finished = [j for j in jobs if j.status == "FINISHED"]

    def stages(job: Job, reused: bool) -> list[str]:
        return [
            k[len("stages.") : -len(".reused")]
            for k, v in job.metrics.items()
            if k.startswith("stages.") and k.endswith(".reused") and (v == 1.0) == reused
        ]

    ran: dict[str, list[float]] = {}
    for j in finished:
        for name in stages(j, reused=False):
            ran.setdefault(name, []).append(j.metrics.get(f"stages.{name}.seconds", 0.0))
    actual = sum(j.metrics.get("wall_seconds", 0.0) for j in finished)
    cold, unknown = actual, set()
    for j in finished:
        for name in stages(j, reused=True):
            if name in ran:
                cold += statistics.fmean(ran[name])
            else:
                unknown.add(name)
    return actual, cold, sorted(unknown)
