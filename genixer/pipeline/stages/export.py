"""Export: selected records as LLaVA training JSON plus the image files it names, laid out
so LLaVA's own training code reads it with ``--data_path X.json --image_folder images``; REC
records also in Shikra's REC jsonl layout (pixel boxes in the original image); with ``hf`` in
``export.formats``, parquet shards the ``datasets`` library reads (:mod:`genixer.pipeline.
hf_export`); and always the dataset card, ``README.md`` (:mod:`genixer.pipeline.card`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from PIL import Image

from genixer.core.boxes import denormalize
from genixer.core.chat import IMAGE_TOKEN, llava_turns
from genixer.core.hashing import weights_sha256
from genixer.core.ledger import count_ledger, read_ledgers
from genixer.core.record import Record, read_records, write_jsonl
from genixer.filters.base import read_scores
from genixer.pipeline.card import CARD, CardFacts, write_card
from genixer.pipeline.hf_export import DATA_GLOB, HF_DIR, export_hf, hf_row
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.select import SELECTED
from genixer.tasks import get_task
from genixer.tasks.regions import box_and_text
from genixer.world.base import safe_join

LLAVA_JSON = "llava_synthetic.json"
SHIKRA_REC = "shikra_rec.jsonl"


def llava_entry(rec: Record) -> dict:
    turns = get_task(rec.task).conversation(rec.turns)
    conv = []
    for i, (q, a) in enumerate(turns):
        conv.append({"from": "human", "value": f"{IMAGE_TOKEN}\n{q}" if i == 0 else q})
        conv.append({"from": "gpt", "value": a})
    return {"id": rec.id, "image": rec.image, "conversations": conv}


def export_llava(records: list[Record], world_root: Path, folder: Path) -> dict:
    images = folder / "images"
    copied = 0
    for rec in records:
        dst = safe_join(images, rec.image)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(safe_join(world_root, rec.image), dst)
            copied += 1
    entries = [llava_entry(r) for r in records]
    tmp = folder / (LLAVA_JSON + ".tmp")
    tmp.write_text(json.dumps(entries, indent=1, ensure_ascii=False))
    os.replace(tmp, folder / LLAVA_JSON)
    return {"entries": len(entries), "images": copied, "json": str(folder / LLAVA_JSON)}


def read_llava(path: Path) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """``(id, image, turns)`` from a LLaVA training JSON (our export or anyone's)."""
    return [
        (e["id"], e["image"], llava_turns(e["conversations"]))
        for e in json.loads(Path(path).read_text())
    ]


def export_shikra_rec(
    records: list[Record], folder: Path, scores: dict[str, float] | None = None
) -> dict:
    """REC records as Shikra's REC jsonl: ``img_path`` (relative to ``folder/images``, as
    Shikra's ``image_folder`` expects), ``expression``, ``bbox`` ``[x0, y0, x1, y1]`` in
    pixels of the original image, ``height``, ``width``, and the filter's ``score`` (null
    when unfiltered). Records whose box or expression cannot be read are counted, not
    written."""
    rows, unreadable, sizes = [], 0, {}
    for rec in records:
        if rec.task != "rec":
            continue
        found = box_and_text(rec)
        if found is None:
            unreadable += 1
            continue
        box, expression = found
        if rec.image not in sizes:
            with Image.open(safe_join(folder / "images", rec.image)) as im:
                sizes[rec.image] = im.size
        width, height = sizes[rec.image]
        rows.append(
            {
                "id": rec.id,
                "img_path": rec.image,
                "expression": expression,
                "bbox": [round(v, 2) for v in denormalize(box, width, height)],
                "height": height,
                "width": width,
                "score": (scores or {}).get(rec.id),
            }
        )
    write_jsonl(folder / SHIKRA_REC, rows)
    return {"shikra_rec": len(rows), "shikra_rec_unreadable": unreadable}


def _card_facts(ctx: RunContext, inputs: Inputs, kept: list[Record], files: dict) -> CardFacts:
    """What the card says, from the config and the folders of the stages behind the export."""
    _, by_stage = count_ledger(read_ledgers(r.path for r in inputs.values()))
    return CardFacts(
        cfg=ctx.cfg,
        kept=kept,
        infos={name: r.info for name, r in inputs.items()},
        keys={name: r.key for name, r in inputs.items()},
        skipped={s: dict(sorted(c.items())) for s, c in sorted(by_stage.items())},
        formats=list(ctx.cfg.export.formats),
        files=files,
        weights=weights_sha256(inputs["train_generator"].path / "model")
        if "train_generator" in inputs
        else None,
    )


class Export(Stage):
    name, version, phase = "export", 3, "export"
    reads = {"select": "select"}
    uses = {  # the card's provenance: all upstream of select, so its key covers them
        "world": "world",
        "score": "score",
        "dedup": "dedup",
        "generate": "generate",
        "train_generator": "train_generator",
    }

    def key(self, ctx: RunContext) -> dict:
        return {"formats": sorted(set(ctx.cfg.export.formats))}

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        kept = read_records(inputs["select"].path / SELECTED)
        info = export_llava(kept, inputs["world"].path, folder)
        files = {"llava": f"{LLAVA_JSON} (images in images/)"}
        scores = read_scores(inputs["score"].path) if "score" in inputs else None
        if ctx.cfg.task.name == "rec" or any(r.task == "rec" for r in kept):
            info |= export_shikra_rec(kept, folder, scores)
            files["shikra_rec"] = SHIKRA_REC
        if "hf" in ctx.cfg.export.formats:
            conv = {e["id"]: e["conversations"] for e in map(llava_entry, kept)}
            rows = [
                hf_row(r, folder / "images", conv[r.id], (scores or {}).get(r.id)) for r in kept
            ]
            info |= export_hf(rows, folder)
            files["hf"] = f"{HF_DIR}/{DATA_GLOB}"
        write_card(_card_facts(ctx, inputs, kept, files), folder)
        return info

    def summarize(self, ctx: RunContext, results) -> dict:
        exported = results["export"]
        block = {
            "llava_json": str(exported.path / LLAVA_JSON),
            "entries": exported.info["entries"],
            "card": str(exported.path / CARD),
        }
        if "shikra_rec" in exported.info:
            block["shikra_rec_jsonl"] = str(exported.path / SHIKRA_REC)
            block["shikra_rec"] = exported.info["shikra_rec"]
        if "hf_rows" in exported.info:
            block["hf_dir"] = str(exported.path / HF_DIR)
        return {"export": block}
