"""What the record viewer shows, gathered from a finished run's folder.

One entry per generated record (its turns, score, oracle verdict and fate: ``kept``,
``dropped`` by the filter, ``duplicate`` dropped by dedup, or ``generated`` where the run
stopped before selection), per parse failure (``parse_failure``, with its reason) and per
skipped input of the run's skip ledger (``skipped``, with its reason). Everything is read
through ``summary.json``, which names each stage's files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from genixer.core.ledger import LEDGER
from genixer.core.record import Record, read_jsonl

# what the generate and select stages write, by file name (tests/test_viewer.py checks that
# these equal the stages' own names; importing the stages would load torch for a viewer)
PARSE_FAILURES = "parse_failures.jsonl"
SELECTED = "selected.jsonl"
SCENES = "scenes.jsonl"


class ViewerInputError(FileNotFoundError):
    """A run folder without what the viewer needs; the message names what is missing."""


@dataclass
class RunFiles:
    """The files of one run the viewer reads (None: the run has none, e.g. no filter)."""

    run_dir: Path
    summary: dict
    records: Path
    world_root: Path
    failures: Path | None = None
    dedup_ledger: Path | None = None
    scores: Path | None = None
    selected: Path | None = None
    ledger: Path | None = None
    missing: list[str] = field(default_factory=list)  # optional files named but absent


def run_folder(path: str | Path) -> tuple[Path, Path]:
    """``(run folder, summary.json)`` from a run folder or its ``summary.json``."""
    p = Path(path)
    if not p.exists():
        raise ViewerInputError(f"{path}: no such run folder (or summary.json)")
    if p.is_dir():
        p = p / "summary.json"
    if p.name != "summary.json":
        raise ViewerInputError(f"{path}: give a run folder or its summary.json")
    if not p.is_file():
        raise ViewerInputError(f"{p.parent}: missing summary.json (the viewer reads it first)")
    return p.parent, p


def _required(path: Path | str | None, what: str) -> Path:
    if not path or not Path(path).is_file():
        raise ViewerInputError(f"missing {what}: {path or '(not named in summary.json)'}")
    return Path(path)


def _optional(path: Path | str | None, missing: list[str]) -> Path | None:
    if not path:
        return None
    if not Path(path).is_file():
        missing.append(str(path))
        return None
    return Path(path)


def _selected_path(summary: dict, records: Path) -> str | None:
    """The select stage's ``selected.jsonl``: named in the summary (``select.records``), or,
    for runs summarized before it was, found in the cache by the stage's key."""
    named = summary.get("select", {}).get("records")
    if named:
        return named
    key = summary.get("stages", {}).get("select", {}).get("key")
    return str(records.parents[2] / "select" / key / SELECTED) if key else None


def find_files(path: str | Path) -> RunFiles:
    """The run's files; :class:`ViewerInputError` naming the first required one missing."""
    run_dir, summary_path = run_folder(path)
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError as err:
        raise ViewerInputError(f"{summary_path}: not readable JSON ({err})") from None
    gen = summary.get("generation")
    if not gen:
        raise ViewerInputError(
            f"{summary_path}: no generation block (the run stopped before generate): "
            "missing generation.records"
        )
    records = _required(gen.get("records"), "generated records (generation.records)")
    world_root = Path(summary.get("world_root") or "")
    if not summary.get("world_root") or not (world_root / SCENES).is_file():
        raise ViewerInputError(f"missing the world's index: {world_root / SCENES} (world_root)")
    missing: list[str] = []
    dedup = gen.get("deduplicated_records")
    return RunFiles(
        run_dir=run_dir,
        summary=summary,
        records=records,
        world_root=world_root,
        failures=_optional(records.parent / PARSE_FAILURES, missing),
        dedup_ledger=_optional(Path(dedup).parent / LEDGER, missing) if dedup else None,
        scores=_optional(summary.get("filter", {}).get("scores"), missing),
        selected=_optional(_selected_path(summary, records), missing)
        if "select" in summary
        else None,
        ledger=_optional(summary.get("skipped", {}).get("ledger"), missing),
        missing=missing,
    )


def _image_paths(world_root: Path) -> dict[str, str]:
    return {row["id"]: row["path"] for row in read_jsonl(world_root / SCENES)}


def record_entry(rec: Record, score: float | None, status: str, reason: str = "") -> dict:
    """A generated record as the viewer shows it."""
    kinds = sorted({t.kind for t in rec.turns if t.kind})
    return {
        "id": rec.id,
        "image": rec.image,
        "image_id": rec.image_id,
        "task": rec.task,
        "requested_task": rec.requested_task,
        "kinds": kinds,
        "turns": [
            {"q": t.question, "a": t.answer, "options": t.options, "kind": t.kind, "boxes": t.boxes}
            for t in rec.turns
        ],
        "raw": rec.raw,
        "score": score,
        "oracle": rec.oracle,
        "status": status,
        "reason": reason,
        "template_id": rec.provenance.get("template_id"),
        "provenance": rec.provenance,
    }


def _fates(files: RunFiles) -> tuple[dict[str, str], set[str] | None, dict[str, float]]:
    """(dedup drop reason by id, kept ids or None before selection, score by id)."""
    dropped = {}
    if files.dedup_ledger is not None:
        for row in read_jsonl(files.dedup_ledger):
            if "id" in row:
                detail = f" of {row['duplicate_of']}" if row.get("duplicate_of") else ""
                dropped[row["id"]] = row.get("reason", "duplicate") + detail
    kept = None
    if files.selected is not None:
        kept = {row["id"] for row in read_jsonl(files.selected)}
    scores = {}
    if files.scores is not None:
        scores = {r["id"]: r["score"] for r in read_jsonl(files.scores)}
    return dropped, kept, scores


def _record_entries(files: RunFiles) -> list[dict]:
    dropped, kept, scores = _fates(files)
    out = []
    for row in read_jsonl(files.records):
        rec = Record.from_dict(row)
        score = scores.get(rec.id)
        if rec.id in dropped:
            status, reason = "duplicate", dropped[rec.id]
        elif kept is None:
            status, reason = "generated", "the run stopped before selection"
        elif rec.id in kept:
            status, reason = "kept", ""
        else:
            status = "dropped"
            reason = "no score" if score is None else "the filter's selection left it out"
        out.append(record_entry(rec, score, status, reason))
    return out


def _failure_entries(files: RunFiles, images: dict[str, str], task: str) -> list[dict]:
    if files.failures is None:
        return []
    return [
        {
            "id": row["id"],
            "image": images.get(row.get("image_id", "")),
            "image_id": row.get("image_id"),
            "task": task,
            "kinds": [],
            "turns": [],
            "raw": row.get("raw", ""),
            "score": None,
            "oracle": None,
            "status": "parse_failure",
            "reason": row.get("reason", "unknown"),
            "detail": row.get("detail", ""),
        }
        for row in read_jsonl(files.failures)
    ]


def _skip_entries(files: RunFiles, images: dict[str, str]) -> list[dict]:
    """Skipped inputs of the run's ledger (dedup's drops are shown on their records)."""
    if files.ledger is None:
        return []
    out = []
    for i, row in enumerate(read_jsonl(files.ledger)):
        if row.get("stage") == "dedup":
            continue
        extra = {k: v for k, v in row.items() if k not in ("stage", "reason", "detail")}
        out.append(
            {
                "id": f"skip-{i}-{row.get('stage', 'unknown')}",
                "image": images.get(row.get("id", "")),
                "task": "(input)",
                "kinds": [],
                "turns": [],
                "raw": "",
                "score": None,
                "oracle": None,
                "status": "skipped",
                "reason": f"{row.get('stage', 'unknown')}: {row.get('reason', 'unknown')}",
                "detail": " ".join(
                    [row.get("detail", ""), json.dumps(extra, sort_keys=True)]
                ).strip(),
            }
        )
    return out


def gather(files: RunFiles) -> list[dict]:
    """Every entry the viewer shows, records first (in id order), then parse failures,
    then skipped inputs."""
    images = _image_paths(files.world_root)
    records = _record_entries(files)
    asked = records[0]["requested_task"] if records else "(unparsed)"
    return records + _failure_entries(files, images, asked) + _skip_entries(files, images)
