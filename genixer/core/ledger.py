"""The skip ledger: every input a stage leaves out, one JSON line each, with its reason.

A stage writes its own ``skipped.jsonl`` (or ``skipped-<name>.jsonl``) into its output
folder; at the end of a run :func:`merge_ledgers` gathers the ledgers of every stage the run
used into the run's own ``skipped.jsonl`` and counts them for ``summary.json``'s ``skipped``.
Row fields: ``stage``, ``reason``, ``path`` and/or ``id``, optional ``detail`` and extras.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from genixer.core.record import read_jsonl, write_jsonl

LEDGER = "skipped.jsonl"
LEDGER_GLOB = "skipped*.jsonl"


class SkipLedger:
    """Skips of one stage, counted by reason; written atomically in one go."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.rows: list[dict] = []
        self.counts: Counter = Counter()

    def add(
        self,
        reason: str,
        *,
        path: str | None = None,
        id: str | None = None,  # noqa: A002 - the ledger's field name
        detail: str = "",
        **extra: object,
    ) -> None:
        row: dict = {"stage": self.stage, "reason": reason}
        if path is not None:
            row["path"] = str(path)
        if id is not None:
            row["id"] = id
        if detail:
            row["detail"] = detail
        row.update(extra)
        self.rows.append(row)
        self.counts[reason] += 1

    def __len__(self) -> int:
        return len(self.rows)

    def write(self, folder: str | Path, name: str = LEDGER) -> Path:
        path = Path(folder) / name
        write_jsonl(path, self.rows)
        return path


def read_ledgers(folders: Iterable[str | Path]) -> list[dict]:
    """The ledger rows found in ``folders`` (in the given order, each folder's files sorted
    by name)."""
    rows: list[dict] = []
    for folder in folders:
        for path in sorted(Path(folder).glob(LEDGER_GLOB)):
            rows.extend(read_jsonl(path))
    return rows


def count_ledger(rows: Iterable[dict]) -> tuple[Counter, dict[str, Counter]]:
    """Skipped items by reason, and by stage and reason (a row with ``records: n`` stands
    for n of them)."""
    counts: Counter = Counter()
    by_stage: dict[str, Counter] = {}
    for r in rows:
        n = int(r.get("records", 1))
        counts[r.get("reason", "unknown")] += n
        by_stage.setdefault(r.get("stage", "unknown"), Counter())[r.get("reason", "unknown")] += n
    return counts, by_stage


def merge_ledgers(folders: Iterable[str | Path], out_path: str | Path) -> dict:
    """Concatenate the ledgers found in ``folders`` (:func:`read_ledgers`) into
    ``out_path``; returns ``summary.json``'s ``skipped`` block:
    ``{"counts": {reason: n}, "by_stage": {stage: {reason: n}}, "total": n, "ledger": path}``
    (``total`` counts skipped items: a row with ``records: n`` stands for n of them).
    """
    rows = read_ledgers(folders)
    counts, by_stage = count_ledger(rows)
    out = Path(out_path)
    write_jsonl(out, (json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows))
    return {
        "counts": dict(sorted(counts.items())),
        "by_stage": {s: dict(sorted(c.items())) for s, c in sorted(by_stage.items())},
        "total": sum(counts.values()),
        "ledger": str(out),
    }
