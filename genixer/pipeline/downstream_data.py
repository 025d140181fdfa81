"""What the downstream arms train on: the entries of ``downstream.pretrain_data`` and
``finetune_data`` resolved against the run, and the part of the arms' cache keys they decide.

An entry is the world's labeled split (``{world: downstream}``, conversations as
``downstream.small_set_tasks`` says, encoded up front: the built-in world is small), the
run's export (``{export: true}``) or a LLaVA-format file (``{file, images}``); the last two
are streamed (:mod:`genixer.training.stream`). The baseline arm leaves the export entries
out: it is the same recipe without the synthetic data. With the default entries the keys
are the ones the stages had before these lists existed, so their cached folders stay valid.
"""

from __future__ import annotations

from pathlib import Path

from genixer.core.build import to_plain
from genixer.core.ledger import SkipLedger
from genixer.pipeline.artifacts import images_by_id, vlm_examples, world_splits
from genixer.pipeline.stage import Inputs, RunContext
from genixer.pipeline.stages.collect import plain_rows
from genixer.pipeline.stages.export import LLAVA_JSON
from genixer.training.data import EncodedDataset
from genixer.training.stream import (
    MixedDataset,
    StreamedFile,
    cached_index,
    file_fingerprint,
    pick,
    seed_for,
)

# The entries that make the built-in world's recipe: left out of the cache keys.
DEFAULTS = {
    "pretrain_data": [{"export": True}],
    "finetune_data": [{"world": "downstream"}],
    "benchmarks": [{"benchmark": "world"}],
}
INDEX_DIR = "data_index"  # under paths.cache_dir: the files' record indexes, shared by runs


def arm_entries(ctx: RunContext, key: str, arm: str) -> list[dict]:
    """The entries of ``downstream.<key>`` an arm uses: those for both arms and its own
    (``arm``); the export only in the synthetic arm."""
    entries = to_plain(ctx.cfg.downstream[key]) or []
    own = [e for e in entries if e.get("arm", arm) == arm]
    return [e for e in own if not (arm == "baseline" and e.get("export"))]


def _keyed(entry: dict) -> dict:
    """An entry as its key sees it: its files by path, size and mtime."""
    out = dict(entry)
    if "file" in entry:
        out["file"] = file_fingerprint(entry["file"])
    if "annotations" in entry:
        out["annotations"] = [file_fingerprint(f) for f in entry["annotations"]]
    return out


def data_key(ctx: RunContext, arm: str) -> dict:
    """The data, benchmark and checkpoint part of an arm's key; empty for the defaults (and
    the baseline's holds nothing the generation or the filter decides)."""
    d, key = ctx.cfg.downstream, {}
    pre = arm_entries(ctx, "pretrain_data", arm)
    if arm == "synthetic" or pre:
        key["pretrain"] = d.pretrain
    for name in DEFAULTS:
        entries = arm_entries(ctx, name, arm)
        if entries != DEFAULTS[name] and (name != "pretrain_data" or "pretrain" in key):
            key[name] = [_keyed(e) for e in entries]
    if d.checkpoint is not None:
        key["checkpoint"] = {
            "config": file_fingerprint(Path(d.checkpoint) / "config.json"),
            "fresh_projector": bool(d.fresh_projector),
        } | ({"family": d.family} if d.get("family", "genixer") != "genixer" else {})
    return key


def _world_part(ctx: RunContext, inputs: Inputs, entry: dict, encode, seed: int):
    d, world = ctx.cfg.downstream, inputs["world"].path
    split = entry["world"]
    tasks = list(d.small_set_tasks) if d.small_set_tasks else None
    rows = plain_rows(world_splits(world)[split], seed, split, tasks)
    if "ratio" in entry or "count" in entry:
        picks = pick(len(rows), seed=seed_for(seed, split), **_sampling(entry))
        rows = [rows[int(i)] for i in picks]
    return EncodedDataset(vlm_examples(rows, images_by_id(world)), encode, world)


def _sampling(entry: dict) -> dict:
    return {"ratio": entry.get("ratio"), "count": entry.get("count")}


def _file_of(entry: dict, inputs: Inputs) -> tuple[Path, Path]:
    if entry.get("export"):
        export = inputs["export"].path
        return export / LLAVA_JSON, export / "images"
    return Path(entry["file"]), Path(entry["images"])


def arm_dataset(
    ctx: RunContext, inputs: Inputs, entries: list[dict], encode, ledger: SkipLedger
) -> EncodedDataset | MixedDataset | None:
    """The training examples of ``entries`` (None when there are none), encoded by
    ``encode(image, turns)`` (the downstream model's processor); records left out go to
    ``ledger`` with their reason."""
    seed = int(ctx.cfg.downstream.seed)
    parts = []
    for n, entry in enumerate(entries):
        if "world" in entry:
            parts.append(_world_part(ctx, inputs, entry, encode, seed))
            continue
        path, images = _file_of(entry, inputs)
        index = cached_index(path, Path(ctx.cfg.paths.cache_dir) / INDEX_DIR, ledger)
        picks = pick(len(index), seed=seed_for(seed, f"{n}:{path.name}"), **_sampling(entry))
        parts.append(StreamedFile(path, images, index, picks))
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0], EncodedDataset):
        return parts[0]  # the built-in world's recipe: exactly as before these lists
    return MixedDataset(parts, encode, ledger)
