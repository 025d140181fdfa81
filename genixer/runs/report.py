"""The report of a sweep: ``python -m genixer.report <sweep dir | parent run id>``.

Reads the sweep's child runs from MLflow, groups them by setting (the overrides that vary
across the sweep, seeds left out), and writes ``report.md`` (mean and std over seeds for each
setting, then one line per job: status, time, stages ran / re-used, a link to its record
viewer), ``report.png`` and
``report.json`` to the sweep's folder and to the parent run's artifacts (``report/``).
A multirun writes it by itself at its end (:class:`genixer.runs.sweep.SweepCallback`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genixer.runs.report_auroc import plot_gain_against_auroc
from genixer.runs.report_benchmarks import benchmark_metrics, benchmark_tables, plot_benchmarks
from genixer.runs.sweep_jobs import Job, Setting, group, load_jobs, mean_std, stage_times
from genixer.runs.sweep_record import read_sweep_record
from genixer.runs.tracking import SWEEP_ID_TAG, default_tracking_uri
from genixer.runs.viewer import VIEWER

METRICS = [
    "downstream.accuracy",
    "downstream.gain",
    "downstream.baseline_accuracy",
    "select.num_kept",
    "select.oracle_accuracy",
    "filter.auroc",
    "generation.oracle_accuracy",
    "wall_seconds",
]
PLOTTED = ["downstream.accuracy", "downstream.gain", "select.oracle_accuracy", "select.num_kept"]
COUNTS = ("select.num_kept", "select.num_passed", "generation.num_records", "wall_seconds")


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if metric.endswith(COUNTS) else f"{value:.3f}"


def cell(metric: str, values: list[float]) -> str:
    mean, std = mean_std(values)
    if mean is None:
        return "-"
    return _fmt(metric, mean) + (f" ± {_fmt(metric, std)}" if std is not None else "")


def viewer_of(job: Job) -> Path | None:
    """The job's record viewer (``<run folder>/viewer/index.html``), where it was written."""
    if not job.output_dir:
        return None
    index = Path(job.output_dir) / VIEWER / "index.html"
    return index if index.is_file() else None


def _viewer_cell(job: Job, links_from: Path | None) -> str:
    index = viewer_of(job)
    if index is None:
        return "-"
    return f"[records]({os.path.relpath(index, links_from) if links_from else index})"


def markdown(
    title: str,
    parent_run_id: str,
    uri: str,
    settings: list[Setting],
    jobs: list[Job],
    *,
    empty_cache_seconds: float | None = None,
    links_from: Path | None = None,
) -> str:
    """The report's text. ``empty_cache_seconds``: the measured pipeline time of one of the
    sweep's jobs run alone from an empty cache; each job costs about that without re-use.
    ``links_from``: the report's folder, that each job's viewer link is relative to."""
    metrics = [m for m in METRICS if any(m in j.metrics for j in jobs)]
    failed = [j for j in jobs if j.status != "FINISHED"]
    lines = [
        f"# Sweep report: {title}",
        "",
        f"MLflow parent run `{parent_run_id}` in `{uri}`: {len(jobs)} jobs, "
        f"{len(jobs) - len(failed)} finished, {len(failed)} not.",
        "Each cell: mean ± std (sample std) over the finished seeds of a setting.",
        "",
        "| " + " | ".join(["setting", "seeds", *metrics]) + " |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for s in settings:
        n_bad = len(s.jobs) - len(s.finished)
        seeds = str(len(s.finished)) + (f" (+{n_bad} failed)" if n_bad else "")
        cells = [cell(m, s.values(m)) for m in metrics]
        lines.append("| " + " | ".join([s.label, seeds, *cells]) + " |")
    actual, cold, unknown = stage_times(jobs)
    lines += [
        "",
        f"Pipeline time of the finished jobs: {actual:.0f} s. The same jobs each with an "
        f"empty cache (estimate: each re-used stage at the mean time it took where it ran): "
        f"{cold:.0f} s" + (f", {cold / actual:.1f}x." if actual > 0 else "."),
    ]
    if unknown:
        lines.append(f"Re-used in every job, so left out of the estimate: {', '.join(unknown)}.")
    lines += benchmark_tables(settings, jobs)
    if empty_cache_seconds is not None and actual > 0:
        n = len([j for j in jobs if j.status == "FINISHED"])
        lines.append(
            f"Measured: one job alone from an empty cache took {empty_cache_seconds:.0f} s; "
            f"{n} such jobs: {n * empty_cache_seconds:.0f} s, "
            f"{n * empty_cache_seconds / actual:.1f}x the sweep's {actual:.0f} s."
        )
    lines += ["", "## Jobs", ""]
    lines.append("| job | setting | seed | status | seconds | ran | re-used | viewer |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for j in jobs:
        reused = [k for k, v in j.metrics.items() if k.endswith(".reused") and v == 1.0]
        ran = [k for k, v in j.metrics.items() if k.endswith(".reused") and v == 0.0]
        status = j.status + (f": {j.error}" if j.error else "")
        lines.append(
            f"| {j.name} | {j.setting} | {j.seed or '-'} | {status} | "
            f"{_fmt('wall_seconds', j.metrics.get('wall_seconds'))} | {len(ran)} | {len(reused)} | "
            f"{_viewer_cell(j, links_from)} |"
        )
    return "\n".join(lines) + "\n"


def plot(settings: list[Setting], varying: list[str], jobs: list[Job], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in PLOTTED if any(m in j.metrics for j in jobs)] or ["wall_seconds"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    labels = ["\n".join(s.point) or s.label for s in settings]
    xs = list(range(len(settings)))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for x, s in zip(xs, settings, strict=True):
            vals = s.values(metric)
            ax.scatter([x] * len(vals), vals, color="0.6", s=14, zorder=2)
            mean, std = mean_std(vals)
            if mean is not None:
                ax.errorbar(x, mean, yerr=std or 0.0, fmt="o", color="C0", capsize=4, zorder=3)
        if metric == "downstream.accuracy":
            base = [
                j.metrics["downstream.baseline_accuracy"]
                for j in jobs
                if j.status == "FINISHED" and "downstream.baseline_accuracy" in j.metrics
            ]
            if base:
                ax.axhline(statistics.fmean(base), color="C3", ls="--", label="baseline")
                ax.legend(fontsize=8)
        if metric == "downstream.gain":
            ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_title(metric, fontsize=10)
        longest = max(len(x) for line in labels for x in line.split("\n"))
        tilt = {"rotation": 30, "ha": "right"} if longest * len(labels) > 44 else {}
        ax.set_xticks(xs, labels, fontsize=8, **tilt)
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.grid(axis="y", alpha=0.3)
    title = ", ".join(varying) or "sweep"
    fig.suptitle(f"{title}   (grey: each seed; blue: mean ± std)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _report_data(
    parent_run_id: str, varying: list[str], settings: list[Setting], jobs: list[Job]
) -> dict:
    """``report.json``: each setting's metrics (mean, std and the values of its finished
    seeds) and each job's outcome, for scripts that compare sweeps."""
    return {
        "parent_run_id": parent_run_id,
        "varying": varying,
        "settings": [
            {
                "setting": s.label,
                "finished": len(s.finished),
                "failed": len(s.jobs) - len(s.finished),
                "metrics": {
                    m: dict(zip(("mean", "std"), mean_std(s.values(m)), strict=True))
                    | {"values": s.values(m)}
                    for m in METRICS + benchmark_metrics(jobs)
                    if s.values(m)
                },
            }
            for s in settings
        ],
        "jobs": [
            {
                "name": j.name,
                "run_id": j.run_id,
                "status": j.status,
                "setting": j.setting,
                "seed": j.seed,
                "error": j.error,
                "viewer": str(viewer_of(j)) if viewer_of(j) else None,
            }
            for j in jobs
        ],
    }


def make_report(
    tracking_uri: str,
    parent_run_id: str,
    out_dir: Path,
    log_to_parent: bool = True,
    empty_cache_seconds: float | None = None,
) -> dict[str, Path]:
    """Write report.md / report.png / report.json to ``out_dir`` (and the parent's artifacts)."""
    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    jobs = load_jobs(client, parent_run_id)
    if not jobs:
        raise ValueError(f"run {parent_run_id} has no child runs in {tracking_uri}")
    settings, varying = group(jobs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = parent.info.run_name or parent_run_id
    paths = {
        "markdown": out_dir / "report.md",
        "plot": out_dir / "report.png",
        "json": out_dir / "report.json",
    }
    text = markdown(
        title,
        parent_run_id,
        tracking_uri,
        settings,
        jobs,
        empty_cache_seconds=empty_cache_seconds,
        links_from=out_dir.resolve(),
    )
    paths["markdown"].write_text(text)
    plot(settings, varying, jobs, paths["plot"])
    if plot_gain_against_auroc(settings, out_dir / "report_auroc.png") is not None:
        paths["auroc_plot"] = out_dir / "report_auroc.png"
    if plot_benchmarks(settings, jobs, out_dir / "report_benchmarks.png") is not None:
        paths["benchmarks_plot"] = out_dir / "report_benchmarks.png"
    data = _report_data(parent_run_id, varying, settings, jobs)
    paths["json"].write_text(json.dumps(data, indent=2))
    if log_to_parent:
        for p in paths.values():
            client.log_artifact(parent_run_id, str(p), "report")
    return paths


def _find_parent(client: MlflowClient, sweep_dir: Path) -> str:
    exps = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(
        exps, filter_string=f"tags.`{SWEEP_ID_TAG}` = '{sweep_dir}'", max_results=1
    )
    if not found:
        raise SystemExit(f"no MLflow parent run for sweep {sweep_dir} in {client.tracking_uri}")
    return found[0].info.run_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m genixer.runs.report", description=__doc__.split("\n")[0]
    )
    ap.add_argument("target", help="a sweep folder (multirun/...) or an MLflow parent run id")
    ap.add_argument(
        "--tracking-uri",
        help="default: the sweep's own store, else "
        "sqlite:///$GENIXER_ROOT/mlflow.db (or the working directory's)",
    )
    ap.add_argument("--out", help="where to write (default: the sweep folder)")
    ap.add_argument("--no-log", action="store_true", help="do not log to the parent run")
    ap.add_argument(
        "--empty-cache-summary",
        help="summary.json of one of the sweep's jobs run alone from an empty cache: the "
        "report compares the sweep's time with that job's times the number of jobs",
    )
    args = ap.parse_args(argv)
    empty = None
    if args.empty_cache_summary:
        empty = float(json.loads(Path(args.empty_cache_summary).read_text())["wall_seconds"])
    default_uri = default_tracking_uri(os.environ.get("GENIXER_ROOT"))
    target = Path(args.target)
    if target.is_dir():
        sweep_dir = target.resolve()
        record = read_sweep_record(sweep_dir) or {}
        uri = args.tracking_uri or record.get("tracking_uri") or default_uri
        parent = record.get("parent_run_id") or _find_parent(MlflowClient(uri), sweep_dir)
        out = Path(args.out) if args.out else sweep_dir
    else:
        uri = args.tracking_uri or default_uri
        parent = args.target
        try:
            run = MlflowClient(uri).get_run(parent)
        except MlflowException as err:
            raise SystemExit(
                f"{parent!r} is not a sweep folder, nor a run id in {uri}: {err.message}"
            ) from None
        sweep = Path(run.data.tags.get(SWEEP_ID_TAG, ""))
        out = (
            Path(args.out)
            if args.out
            else (sweep if str(sweep) != "." and sweep.is_dir() else Path(f"report-{parent[:8]}"))
        )
    try:
        paths = make_report(uri, parent, out, not args.no_log, empty)
    except ValueError as err:  # not a sweep's parent run
        raise SystemExit(str(err)) from None
    print(paths["markdown"].read_text())
    print(paths["markdown"])
    print(paths["plot"])
    print(f"MLflow parent run {parent} in {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
