"""The decontaminate stage (``generate.decontaminate``: one or several benchmark image
folders or image lists): the pool images whose content hash (sha256 of the file's bytes) is
also in a benchmark's image set are excluded from generation. It runs before generation, so
excluded images cost nothing; each is ledgered (reason ``benchmark_overlap``) and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from genixer.core.build import to_plain
from genixer.core.images import ImageError, check_file, file_sha256, safe_join
from genixer.core.ledger import SkipLedger
from genixer.core.record import read_jsonl, write_jsonl
from genixer.pipeline.artifacts import world_splits
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.sources.folder import IMAGE_EXTENSIONS, SOURCES, read_image_list, walk_folder
from genixer.world.base import WorldImage

EXCLUDED = "excluded.jsonl"


def benchmark_specs(value) -> list[dict]:
    """``generate.decontaminate`` as a list of ``{"images", "image_root"}``: accepts null,
    one path, or a list of paths / ``{images: ..., image_root: ...}`` mappings."""
    if value is None or value == "" or value == []:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        spec = dict(item) if isinstance(item, dict) else {"images": item}
        if not spec.get("images"):
            raise ValueError(f"generate.decontaminate entry without images: {item!r}")
        images = Path(str(spec["images"])).expanduser()
        if not images.exists():
            raise ValueError(f"generate.decontaminate: {images} does not exist")
        root = spec.get("image_root")
        root = (
            Path(str(root)).expanduser() if root else (images if images.is_dir() else images.parent)
        )
        out.append({"images": str(images), "image_root": str(root)})
    return out


def _benchmark_paths(spec: dict, ledger: SkipLedger) -> list[tuple[str, Path | None]]:
    images, root = Path(spec["images"]), Path(spec["image_root"])
    listing = SkipLedger(ledger.stage)
    if images.is_dir():
        sources = walk_folder(images, IMAGE_EXTENSIONS, listing)
        listing.rows = [r for r in listing.rows if r["reason"] != "not_an_image_extension"]
    else:
        sources = read_image_list(images, listing)
    for row in listing.rows:  # a benchmark entry we cannot read weakens the check: say so
        row["reason"] = "benchmark_" + row["reason"]
        ledger.rows.append(row)
        ledger.counts[row["reason"]] += 1
    out, seen = [], set()
    for src in sources:
        if src.rel in seen:  # question files name an image once per question
            continue
        seen.add(src.rel)
        try:
            out.append((src.rel, check_file(safe_join(root, src.rel))))
        except ImageError as err:
            ledger.add("benchmark_" + err.reason, path=src.rel, benchmark=str(images))
    return out


def benchmark_fingerprint(specs: list[dict]) -> str:
    """What the benchmark image sets are made of (list bytes; names, sizes, mtimes): part of
    the decontamination stage's key, cheap enough to take on every run."""
    h = hashlib.sha256()
    for spec in specs:
        h.update(json.dumps(spec, sort_keys=True).encode())
        if Path(spec["images"]).is_file():
            h.update(Path(spec["images"]).read_bytes())
        for rel, path in _benchmark_paths(spec, SkipLedger("fingerprint")):
            st = os.stat(path)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def pool_hashes(world_root: Path, pool: list[WorldImage]) -> dict[str, str]:
    """Pool image id -> sha256 of its source file: from ``sources.jsonl`` where the world
    recorded it (``world=folder``: stored images may be converted copies), else hashed."""
    known = {}
    if (world_root / SOURCES).exists():
        known = {r["id"]: r["sha256"] for r in read_jsonl(world_root / SOURCES)}
    return {i.id: known.get(i.id) or file_sha256(safe_join(world_root, i.path)) for i in pool}


def decontaminate(
    specs: list[dict], world_root: Path, pool: list[WorldImage], folder: Path
) -> dict:
    """The decontamination stage: ``excluded.jsonl`` (pool ids whose content is in a
    benchmark) and ``skipped.jsonl`` (those, plus benchmark entries that could not be read)."""
    ledger = SkipLedger("decontaminate")
    bench: dict[str, str] = {}
    n_bench = 0
    for spec in specs:
        for rel, path in _benchmark_paths(spec, ledger):
            n_bench += 1
            bench.setdefault(file_sha256(path), f"{spec['images']}:{rel}")
    excluded = []
    paths = {i.id: i.path for i in pool}
    for image_id, digest in sorted(pool_hashes(world_root, pool).items()):
        if digest in bench:
            path = paths[image_id]
            ledger.add("benchmark_overlap", id=image_id, path=path, benchmark_image=bench[digest])
            excluded.append({"id": image_id, "image": path, "benchmark_image": bench[digest]})
    write_jsonl(folder / EXCLUDED, excluded)
    ledger.write(folder)
    return {
        "benchmark_images": n_bench,
        "distinct_benchmark_images": len(bench),
        "pool_checked": len(pool),
        "excluded": len(excluded),
        "skipped": dict(Counter(ledger.counts)),
    }


def excluded_ids(folder: Path) -> set[str]:
    return {r["id"] for r in read_jsonl(folder / EXCLUDED)}


class Decontaminate(Stage):
    name, version, phase = "decontaminate", 1, "generate"
    reads = {"world": "world"}

    def key(self, ctx: RunContext) -> dict | None:
        specs = benchmark_specs(to_plain(ctx.cfg.generate.decontaminate))
        if not specs:
            return None
        return {"benchmarks": specs, "content": benchmark_fingerprint(specs)}

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        specs = benchmark_specs(to_plain(ctx.cfg.generate.decontaminate))
        world = inputs["world"].path
        return decontaminate(specs, world, world_splits(world)["pool"], folder)
