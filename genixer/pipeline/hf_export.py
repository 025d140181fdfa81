"""``export.formats`` ``hf``: the exported records as parquet shards that the ``datasets``
library reads back with every field, the images inside them (an ``Image`` feature):

    datasets.load_dataset("parquet", data_dir="<export folder>/hf")["train"]

(or ``datasets.load_dataset("<export folder>")``: the dataset card's ``configs`` name the
same files). One row per exported record; ``conversations`` is the LLaVA export's text.
"""

from __future__ import annotations

from pathlib import Path

from genixer.core.images import safe_join
from genixer.core.record import Record

HF_DIR = "hf"
DATA_GLOB = "data/train-*.parquet"
ROWS_PER_SHARD = 5000


def features():
    """The ``datasets.Features`` of a row (``datasets`` is imported only when used)."""
    from datasets import Features, Image, List, Value

    text = Value("string")
    return Features(
        {
            "id": text,
            "image": Image(),
            "image_path": text,  # relative to the world root (and to the export's images/)
            "image_id": text,
            "task": text,
            "requested_task": text,
            "turns": List(
                {
                    "question": text,
                    "answer": text,
                    "options": List(text),
                    "kind": text,
                    "boxes": List(List(Value("float64"))),
                }
            ),
            "conversations": List({"from": text, "value": text}),
            "score": Value("float64"),
            "oracle": Value("bool"),
            "template_id": text,
            "generator": text,
            "seed": Value("int64"),
            "raw": text,
        }
    )


def hf_row(rec: Record, images: Path, conversations: list[dict], score: float | None) -> dict:
    """A record as a row; the image's bytes from the export's own ``images/`` copy."""
    return {
        "id": rec.id,
        "image": {"bytes": safe_join(images, rec.image).read_bytes(), "path": rec.image},
        "image_path": rec.image,
        "image_id": rec.image_id,
        "task": rec.task,
        "requested_task": rec.requested_task,
        "turns": [
            {
                "question": t.question,
                "answer": t.answer,
                "options": t.options,
                "kind": t.kind,
                "boxes": t.boxes,
            }
            for t in rec.turns
        ],
        "conversations": conversations,
        "score": score,
        "oracle": rec.oracle,
        "template_id": rec.provenance.get("template_id"),
        "generator": rec.provenance.get("generator"),
        "seed": rec.provenance.get("seed"),
        "raw": rec.raw,
    }


def export_hf(rows: list[dict], folder: Path) -> dict:
    """``folder/hf/data/train-NNNNN-of-MMMMM.parquet``: :data:`ROWS_PER_SHARD` rows each
    (one empty shard for no rows, so that the dataset still loads, with its features)."""
    from datasets import Dataset

    out = folder / HF_DIR / "data"
    out.mkdir(parents=True, exist_ok=True)
    ds = Dataset.from_list(rows, features=features())
    shards = max(1, -(-len(rows) // ROWS_PER_SHARD))
    for i in range(shards):
        part = ds.shard(shards, i, contiguous=True)
        part.to_parquet(str(out / f"train-{i:05d}-of-{shards:05d}.parquet"))
    return {"hf_rows": len(rows), "hf_shards": shards}
