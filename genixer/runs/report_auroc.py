"""The judge-quality figure of a sweep's report: the downstream gain against the judge's
AUROC, one point per setting (mean ± std over its seeds). Settings without scores (no
filter) have no AUROC and are drawn as horizontal lines. Written as ``report_auroc.png``
when at least two settings have an AUROC (``experiment=judge_quality_sweep``)."""

from __future__ import annotations

from pathlib import Path

from genixer.runs.sweep_jobs import Setting, mean_std

GAIN, AUROC = "downstream.gain", "filter.auroc"


def plot_gain_against_auroc(settings: list[Setting], path: Path) -> Path | None:
    scored = [s for s in settings if s.values(AUROC) and s.values(GAIN)]
    if len({round(mean_std(s.values(AUROC))[0], 3) for s in scored}) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, s in enumerate(scored):
        auroc, _ = mean_std(s.values(AUROC))
        gain, spread = mean_std(s.values(GAIN))
        ax.errorbar(auroc, gain, yerr=spread or 0.0, fmt="o", capsize=4, color=f"C{i % 10}")
        ax.annotate(s.label, (auroc, gain), fontsize=7, xytext=(4, 4), textcoords="offset points")
    for s in (s for s in settings if s.values(GAIN) and not s.values(AUROC)):
        gain, _ = mean_std(s.values(GAIN))
        ax.axhline(gain, ls="--", color="0.4", lw=0.9)
        ax.annotate(s.label, (ax.get_xlim()[0], gain), fontsize=7, color="0.3")
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xlabel("judge AUROC against the oracle (filter.auroc)")
    ax.set_ylabel("downstream gain (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
