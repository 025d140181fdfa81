"""``world=collection``: the paper's instruction data collection from public datasets.

A seeded, weighted mix of dataset converters (:mod:`genixer.sources.datasets`) makes the
``collection`` split the generator trains on. Each entry of ``datasets`` names a converter,
the task(s) it feeds, its files (relative to ``root``, the data root) and a sampling
``ratio``; only entries whose task is one of ``tasks`` (the generator's collection tasks)
are read. The world folder then holds:

- ``samples.jsonl``: the labeled samples (task, QA turns, dataset, source id), in mix order;
- ``images/collection/<image_id><ext>``: each image the mix uses, hard-linked (copied when
  linking fails, or with ``link: copy``) from the data root, so every later stage, the export
  and downstream training read images from the world folder like any other world's;
- ``scenes.jsonl``: the split index (no scene graphs: real images have no oracle);
- ``skipped-collection.jsonl``: every record a converter skipped, with its reason, file and
  position; ``collection.json``: the counts per dataset.

Sampling: ``size: null`` takes ``round(ratio * n)`` samples of a dataset of ``n`` (ratio 1 =
every sample once, 0.5 = a seeded half, 2 = each twice); a number ``size`` splits that many
samples over the datasets in proportion to their ratios. ``max_samples`` caps what is kept
of one dataset while reading (seeded reservoir sampling: bounded memory for Visual Genome's
millions of regions). Other splits (pool, judge, ...) are empty: compose with
``world=folder`` (``world@world.base=collection``) for an unlabeled pool.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import Counter
from pathlib import Path

from genixer.core.record import write_jsonl
from genixer.sources.base import store_file
from genixer.sources.datasets import ConversionLedger, Sample, get_converter
from genixer.sources.datasets.base import check_arguments
from genixer.tasks import TASKS
from genixer.world.base import SPLITS, WorldImage, safe_join, write_index

log = logging.getLogger(__name__)

SAMPLES = "samples.jsonl"
LEDGER = "skipped-collection.jsonl"
REPORT = "collection.json"
_RESERVED = ("converter", "task", "ratio", "max_samples")


def _entries(datasets: dict) -> list[dict]:
    """One entry per (dataset, task): ``{"label", "converter", "task", "ratio",
    "max_samples", "args"}``; raises ValueError for anything a converter would refuse."""
    out = []
    for name, spec in (datasets or {}).items():
        spec = dict(spec or {})
        kind = spec.get("converter", name)
        cls = get_converter(kind)
        tasks = spec.get("task") or cls.tasks[0]
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        ratio = spec.get("ratio", 1.0)
        args = {k: v for k, v in spec.items() if k not in _RESERVED}
        try:
            check_arguments(cls, args)
        except ValueError as err:
            raise ValueError(f"world.datasets.{name}: {err}") from None
        for task in tasks:
            if task not in cls.tasks:
                raise ValueError(
                    f"world.datasets.{name}: {kind} converts to {list(cls.tasks)}, not {task!r}"
                )
            r = ratio.get(task, 0.0) if isinstance(ratio, dict) else ratio
            if r is None or float(r) < 0:
                raise ValueError(f"world.datasets.{name}.ratio must be >= 0, got {r!r}")
            label = name if len(tasks) == 1 else f"{name}:{task}"
            out.append(
                {
                    "label": label,
                    "converter": kind,
                    "task": task,
                    "ratio": float(r),
                    "max_samples": spec.get("max_samples"),
                    "args": args,
                }
            )
    return out


def draw(n: int, want: int, rng: random.Random) -> list[int]:
    """``want`` indices into ``n`` items: every item ``want // n`` times, then a seeded
    subset for the rest; in a seeded order."""
    if n == 0 or want <= 0:
        return []
    idx = list(range(n)) * (want // n) + rng.sample(range(n), want % n)
    rng.shuffle(idx)
    return idx


def shares(entries: list[dict], sizes: dict[str, int], size: int | None) -> dict[str, int]:
    """How many samples each entry contributes to the mix."""
    if size is None:
        return {e["label"]: round(e["ratio"] * sizes[e["label"]]) for e in entries}
    live = [e for e in entries if sizes[e["label"]] > 0 and e["ratio"] > 0]
    total = sum(e["ratio"] for e in live)
    exact = {e["label"]: size * e["ratio"] / total for e in live} if total else {}
    out = {e["label"]: 0 for e in entries} | {k: int(v) for k, v in exact.items()}
    # largest remainders, so the shares add up to ``size`` exactly
    for k in sorted(exact, key=lambda k: (int(exact[k]) - exact[k], k))[: size - sum(out.values())]:
        out[k] += 1
    return out


def _store(src: Path, dst: Path, link: str) -> str:
    return "present" if dst.exists() else store_file(src, dst, link)


class CollectionWorld:
    """The collection split from a weighted, seeded mix of dataset converters.

    Args:
        root: the data root; every dataset path is relative to it and may not leave it.
        datasets: ``{name: {converter?, task (one or a list), ratio, max_samples?, files...}}``.
        tasks: the tasks to build (the generator's ``collection.tasks``); ``None`` = all.
        size: total samples in the mix (``None``: each dataset's ``ratio`` times its size).
        seed: the mix's seed.
        link: ``hardlink`` (copy when linking fails) or ``copy``: how images enter the world.
        image_size: the side the tiny models see (``${world.image_size}`` in their configs).
        box_tolerance_px: how far a box may overhang its image before it is skipped.
        splits: sizes of other splits; only zeros (world=folder sets ``pool: 0`` on its base).
    """

    def __init__(
        self,
        root: str,
        datasets: dict,
        *,
        tasks: list[str] | None = None,
        size: int | None = None,
        seed: int = 0,
        link: str = "hardlink",
        image_size: int | None = None,
        box_tolerance_px: float = 2.0,
        splits: dict | None = None,
    ) -> None:
        other = {k: v for k, v in (splits or {}).items() if v}
        if other:  # world=folder sets `splits.pool: 0` on its base world
            raise ValueError(f"world=collection makes only the collection split, not {other}")
        if not root:
            raise ValueError("world=collection needs world.root (the data root)")
        self.root = Path(root).expanduser()
        unknown = set(tasks or ()) - set(TASKS)
        if unknown:
            raise ValueError(f"world.tasks: unknown task(s) {sorted(unknown)}")
        if link not in ("hardlink", "copy"):
            raise ValueError(f"world.link must be 'hardlink' or 'copy', got {link!r}")
        if size is not None and int(size) < 0:
            raise ValueError(f"world.size must be >= 0 or null, got {size}")
        self.tasks = None if tasks is None else list(tasks)
        self.entries = _entries(datasets)
        self.active = [
            e
            for e in self.entries
            if e["ratio"] > 0 and (self.tasks is None or e["task"] in self.tasks)
        ]
        self.size = None if size is None else int(size)
        self.seed = int(seed)
        self.link = link
        self.image_size = image_size
        self.tolerance = float(box_tolerance_px)
        self.report: dict = {}

    def _files(self, entry: dict) -> list[Path]:
        """The annotation files an entry reads (its arguments that name existing files)."""
        names = get_converter(entry["converter"]).files
        return [safe_join(self.root, entry["args"][k]) for k in names if entry["args"].get(k)]

    def check(self) -> None:
        """Every file an active dataset names exists under the root (cheap: stat only)."""
        if not self.root.is_dir():
            raise ValueError(f"world.root is not a folder: {self.root}")
        for e in self.active:
            for path in self._files(e):
                if not path.is_file():
                    raise ValueError(
                        f"world.datasets: {e['label']} needs {path}, which does not exist "
                        f"(set its ratio to 0 to leave the dataset out)"
                    )

    def fingerprint(self) -> str:
        """Names, sizes and mtimes of the annotation files: the world stage's cache key
        includes it, so an edited annotation file is read again."""
        self.check()
        h = hashlib.sha256()
        for e in self.active:
            for path in self._files(e):
                st = path.stat()
                h.update(f"{e['label']}\0{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ conversion
    def convert(self, ledger: ConversionLedger) -> dict[str, list[Sample]]:
        """Every active entry's samples (capped by ``max_samples``), by label."""
        self.check()
        out: dict[str, list[Sample]] = {}
        for e in self.active:
            cls = get_converter(e["converter"])
            conv = cls(
                self.root,
                task=e["task"],
                label=e["label"],
                box_tolerance_px=self.tolerance,
                **e["args"],
            )
            cap = e["max_samples"]
            rng = random.Random(f"{self.seed}:reservoir:{e['label']}")
            kept: list[Sample] = []
            seen = 0
            for s in conv.convert(ledger):
                seen += 1
                if cap is None or len(kept) < cap:
                    kept.append(s)
                else:
                    j = rng.randrange(seen)
                    if j < cap:
                        kept[j] = s
            out[e["label"]] = kept
            self.report.setdefault("datasets", {})[e["label"]] = {
                "task": e["task"],
                "converted": seen,
                "kept": len(kept),
                "skipped": ledger.reasons(e["label"]),
                "excluded": dict(sorted(conv.excluded.items())),
            }
            log.info(
                "world=collection: %s -> %d %s samples, %d skipped",
                e["label"],
                seen,
                e["task"],
                ledger.total(e["label"]),
            )
        return out

    def mix(self, converted: dict[str, list[Sample]]) -> list[Sample]:
        sizes = {e["label"]: len(converted.get(e["label"], [])) for e in self.active}
        want = shares(self.active, sizes, self.size)
        mixed: list[Sample] = []
        for e in self.active:
            label = e["label"]
            rng = random.Random(f"{self.seed}:draw:{label}")
            picked = draw(sizes[label], want[label], rng)
            mixed += [converted[label][i] for i in picked]
            self.report["datasets"][label]["drawn"] = len(picked)
        random.Random(f"{self.seed}:mix").shuffle(mixed)
        return mixed

    # ------------------------------------------------------------------ the stage
    def materialize(self, folder: str | Path) -> dict[str, list[WorldImage]]:
        folder = Path(folder)
        ledger = ConversionLedger()
        self.report = {}
        samples = self.mix(self.convert(ledger))
        (folder / "images" / "collection").mkdir(parents=True, exist_ok=True)
        stored: Counter = Counter()
        images: dict[str, WorldImage] = {}
        rows = []
        for s in samples:
            if s.image_id not in images:
                rel = f"images/collection/{s.image_id}{Path(s.image).suffix.lower()}"
                stored[_store(safe_join(self.root, s.image), folder / rel, self.link)] += 1
                images[s.image_id] = WorldImage(s.image_id, "collection", rel)
            row = s.to_dict()
            row["source_image"], row["image"] = s.image, images[s.image_id].path
            rows.append(row)
        write_jsonl(folder / SAMPLES, rows)
        ledger.write(folder / LEDGER)
        splits = {k: [] for k in SPLITS} | {"collection": sorted(images.values(), key=_id)}
        write_index(folder, splits)
        self.report |= {
            "samples": len(rows),
            "images": len(images),
            "stored": dict(stored),
            "task_counts": dict(sorted(Counter(r["task"] for r in rows).items())),
            "skipped_total": ledger.total(),
            "ledger": str(folder / LEDGER),
        }
        tmp = folder / (REPORT + ".tmp")
        tmp.write_text(json.dumps(self.report, indent=2, sort_keys=True))
        os.replace(tmp, folder / REPORT)
        self.report = {"collection": self.report}
        if not rows:
            raise ValueError(f"world=collection: no usable sample; reasons in {folder / LEDGER}")
        return splits


def _id(item: WorldImage) -> str:
    return item.id
