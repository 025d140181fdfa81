"""The per-benchmark part of a sweep's report: for each entry of ``downstream.benchmarks``
(summary keys ``downstream.benchmarks.<name>.{baseline,synthetic,gain}``), a table of the
two arms' scores and the gain per setting (mean ± std over seeds), and a figure
(``report_benchmarks.png``): one panel per benchmark, each setting's synthetic score with
the baseline as a dashed line, so a sweep over filter bands or thresholds ends in the
benchmark numbers."""

from __future__ import annotations

import statistics
from pathlib import Path

from genixer.runs.sweep_jobs import Job, Setting, mean_std

PREFIX = "downstream.benchmarks."
COLUMNS = ("baseline", "synthetic", "gain")


def benchmark_names(jobs: list[Job]) -> list[str]:
    """The benchmarks the sweep's runs reported, in name order; none when the built-in
    world's is the only one (the main table's ``downstream.*`` columns show it already)."""
    names = {
        k[len(PREFIX) : -len(".synthetic")]
        for j in jobs
        for k in j.metrics
        if k.startswith(PREFIX) and k.endswith(".synthetic")
    }
    return [] if names <= {"world"} else sorted(names)


def benchmark_metrics(jobs: list[Job]) -> list[str]:
    """Every per-benchmark metric key (for ``report.json``)."""
    return [f"{PREFIX}{n}.{c}" for n in benchmark_names(jobs) for c in COLUMNS]


def _cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    if mean is None:
        return "-"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def benchmark_tables(settings: list[Setting], jobs: list[Job]) -> list[str]:
    """Markdown lines: one table per benchmark (none when the runs reported none)."""
    lines: list[str] = []
    for name in benchmark_names(jobs):
        lines += ["", f"## Benchmark: {name}", "", "| setting | baseline | synthetic | gain |"]
        lines.append("|---|---|---|---|")
        for s in settings:
            cells = [_cell(s.values(f"{PREFIX}{name}.{c}")) for c in COLUMNS]
            lines.append("| " + " | ".join([s.label, *cells]) + " |")
    return lines


def plot_benchmarks(settings: list[Setting], jobs: list[Job], path: Path) -> Path | None:
    """One panel per benchmark; None (no file) when the runs reported no benchmark."""
    names = benchmark_names(jobs)
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(4.0 * len(names), 3.6), squeeze=False)
    xs = list(range(len(settings)))
    for ax, name in zip(axes[0], names, strict=True):
        for x, s in zip(xs, settings, strict=True):
            vals = s.values(f"{PREFIX}{name}.synthetic")
            ax.scatter([x] * len(vals), vals, color="0.6", s=14, zorder=2)
            mean, std = mean_std(vals)
            if mean is not None:
                ax.errorbar(x, mean, yerr=std or 0.0, fmt="o", color="C0", capsize=4, zorder=3)
        base = [v for s in settings for v in s.values(f"{PREFIX}{name}.baseline")]
        if base:
            ax.axhline(statistics.fmean(base), color="C3", ls="--", label="baseline")
            ax.legend(fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(xs, [s.label for s in settings], fontsize=7, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("benchmarks: the synthetic arm per setting (grey: seeds; blue: mean ± std)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
