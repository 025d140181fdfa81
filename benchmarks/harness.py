"""The measuring side of the benchmarks: result rows, repeated timing, the table, the files.

A row compares one of our paths ("ours") with what a user would otherwise do ("baseline"),
both measured in the same run. ``ratio`` is oriented so that higher is better: ours /
baseline for a throughput, baseline / ours for a cost (memory, time). ``met`` is
``ratio >= target``. A row that could not run (no GPU here) keeps ``None`` in its numbers.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROW_KEYS = ("name", "ours", "baseline", "ratio", "target", "unit", "met")


@dataclass
class Row:
    name: str
    ours: float | None
    baseline: float | None
    target: float | None
    unit: str
    ratio: float | None = None
    note: str = ""  # in the markdown table only; latest.json keeps exactly ROW_KEYS
    extra: dict = field(default_factory=dict)  # raw repetitions etc., in latest.md only

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.baseline:
            self.ratio = self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.target is None:
            return None
        return bool(self.ratio >= self.target)

    def to_json(self) -> dict:
        def r(x: float | None) -> float | None:
            return None if x is None else float(f"{x:.4g}")

        return {
            "name": self.name,
            "ours": r(self.ours),
            "baseline": r(self.baseline),
            "ratio": r(self.ratio),
            "target": r(self.target),
            "unit": self.unit,
            "met": self.met,
        }


def skipped_row(name: str, unit: str, reason: str) -> Row:
    return Row(name, None, None, None, unit, note=f"skipped: {reason}")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(
    fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function, ``reps`` times after ``warmup`` untimed calls.

    The calls are interleaved (a, b, c, a, b, c, ...) so that a neighbour's load on a shared
    machine hits every side alike rather than one of them.
    """
    if reps < 1:
        raise ValueError("reps must be >= 1")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def throughput_row(
    name: str,
    work_ours: float,
    work_base: float,
    t_ours: list[float],
    t_base: list[float],
    target: float | None,
    unit: str,
    note: str = "",
) -> Row:
    """Median throughput of each side (work / seconds) and their ratio."""
    ours = statistics.median(work_ours / t for t in t_ours)
    base = statistics.median(work_base / t for t in t_base)
    extra = {"seconds_ours": t_ours, "seconds_baseline": t_base}
    return Row(name, ours, base, target, unit, note=note, extra=extra)


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def table(rows: list[Row]) -> str:
    """The rows as a markdown table (also what ``python -m benchmarks`` prints)."""
    lines = [
        "| comparison | ours | baseline | unit | ratio | target | met | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "-"}[row.met]
        target = f">= {fmt(row.target)}" if row.target is not None else "-"
        lines.append(
            f"| {row.name} | {fmt(row.ours)} | {fmt(row.baseline)} | {row.unit} | "
            f"{fmt(row.ratio)} | {target} | {met} | {row.note} |"
        )
    return "\n".join(lines)


def write_results(rows: list[Row], out_dir: Path, header: str) -> tuple[Path, Path]:
    """``latest.json`` (the rows, exactly ROW_KEYS each) and ``latest.md`` (header + table +
    every repetition), each written whole and renamed into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    details = []
    for row in rows:
        for key, values in row.extra.items():
            shown = ", ".join(fmt(v) for v in values) if isinstance(values, list) else values
            details.append(f"- {row.name} / {key}: {shown}")
    md = f"{header}\n\n{table(rows)}\n\nRepetitions:\n\n" + "\n".join(details) + "\n"
    payload = json.dumps([r.to_json() for r in rows], indent=2) + "\n"
    for path, text in ((json_path, payload), (md_path, md)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return json_path, md_path
