"""Dedup of generated samples and decontamination of the generation pool.

Dedup runs as its own stage after ``generate`` (records parsed) and before scoring, so
changing its settings re-runs only it and what follows, never the generation. A record's
key is its turns' questions, options and answers, each normalized with the VQA answer
normalization of :mod:`genixer.evaluation` (case, punctuation, articles, number words,
contractions); ``[...]`` groups (boxes, points) are kept verbatim, spaces removed. Records
are visited in id order, so what is kept does not depend on batch size or process count:

- ``same_image`` (on by default): a record whose key repeats an earlier record's key for the
  same image adds nothing and is dropped;
- ``corpus_max`` (off by default): at most this many images may carry one key across the
  corpus; later ones are dropped. Short answers legitimately repeat across images ("Is there
  a dog? Yes"), so this is a cap against the generator collapsing onto a few samples, not an
  exact-repeat rule.

Every drop is counted (``generation.duplicates`` in the summary) and written to the stage's
``skipped.jsonl`` with the id it duplicates.

Decontamination (``generate.decontaminate``: one or several benchmark image folders or image
lists) excludes the pool images whose content hash (sha256 of the file's bytes) is also in a
benchmark's image set. It runs as a stage before generation, so excluded images cost nothing;
each excluded image is ledgered (reason ``benchmark_overlap``) and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from genixer.boxes import BoxParseError, find_brackets
from genixer.evaluation import normalize_answer
from genixer.record import QA, Record, read_jsonl, write_jsonl
from genixer.skips import SkipLedger
from genixer.world.base import WorldImage
from genixer.world.folder import IMAGE_EXTENSIONS, SOURCES, read_image_list, walk_folder
from genixer.world.imageio import ImageError, check_file, file_sha256, safe_join

RECORDS = "records.jsonl"
EXCLUDED = "excluded.jsonl"


# --------------------------------------------------------------------------- dedup
def normalize_text(text: str) -> str:
    """VQA-normalized text with its ``[...]`` groups kept verbatim (numbers in boxes must
    not be mangled by the punctuation rules)."""
    try:
        groups = find_brackets(text)
    except BoxParseError:
        groups = []
    parts, last = [], 0
    for start, end, _ in groups:
        parts += [normalize_answer(text[last:start]), "".join(text[start:end].split())]
        last = end
    parts.append(normalize_answer(text[last:]))
    return " ".join(p for p in parts if p)


# Strings that exercise every normalization rule: their normalized forms go into the dedup
# stage's cache key, so a change to the answer normalization re-runs dedup by itself.
_PROBES = (
    "How many Dogs are there? Two.",
    "Is it the red one, or a blue one?",
    "It's 1,000 dogs; isnt it 3.5 cats!",
    "Where is the cat? [0.125, 0.250,0.500,0.750] and [0.1,0.2]",
    "What's that\tthing\non the left: an apple",
    "zero one two three four five six seven eight nine ten",
)


def normalization_fingerprint() -> str:
    blob = json.dumps([normalize_text(p) for p in _PROBES], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def qa_key(turns: list[QA]) -> str:
    """The dedup key of a sample: its normalized (question, options, answer) turns."""
    rows = [
        [
            normalize_text(t.question),
            [normalize_text(o) for o in t.options] if t.options else None,
            normalize_text(t.answer),
        ]
        for t in turns
    ]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def dedup(
    records: list[Record], same_image: bool = True, corpus_max: int | None = None
) -> tuple[list[Record], SkipLedger]:
    """Kept records (in id order) and the ledger of the dropped ones."""
    if corpus_max is not None and int(corpus_max) < 1:
        raise ValueError(f"dedup.corpus_max must be >= 1 or null, got {corpus_max}")
    ledger = SkipLedger("dedup")
    first_on_image: dict[tuple[str, str], str] = {}
    corpus: dict[str, list[str]] = {}
    kept = []
    for rec in sorted(records, key=lambda r: r.id):
        key = qa_key(rec.turns)
        prior = first_on_image.get((rec.image_id, key))
        if same_image and prior is not None:
            ledger.add("duplicate_same_image", id=rec.id, image_id=rec.image_id, duplicate_of=prior)
            continue
        first_on_image.setdefault((rec.image_id, key), rec.id)
        holders = corpus.setdefault(key, [])
        if corpus_max is not None and len(holders) >= int(corpus_max):
            ledger.add(
                "duplicate_corpus", id=rec.id, image_id=rec.image_id, duplicate_of=holders[0]
            )
            continue
        holders.append(rec.id)
        kept.append(rec)
    return kept, ledger


def run_dedup(records: list[Record], folder: Path, same_image: bool, corpus_max) -> dict:
    """The dedup stage: ``records.jsonl`` (kept) and ``skipped.jsonl`` (dropped)."""
    kept, ledger = dedup(records, same_image, corpus_max)
    write_jsonl(folder / RECORDS, (r.to_json() for r in kept))
    ledger.write(folder)
    return {
        "num_input": len(records),
        "num_records": len(kept),
        "duplicates": {
            "same_image": ledger.counts["duplicate_same_image"],
            "corpus": ledger.counts["duplicate_corpus"],
        },
    }


# --------------------------------------------------------------------------- decontamination
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


def summary_block(deduped, decontaminated) -> dict:
    """What the dedup and decontamination stages add to ``summary.json``'s generation."""
    out = {
        "duplicates": deduped.info["duplicates"],
        "num_deduplicated": deduped.info["num_records"],
        "deduplicated_records": str(deduped.path / RECORDS),
        "decontaminated": None,
    }
    if decontaminated is not None:
        info = decontaminated.info
        out["decontaminated"] = {
            "excluded_images": info["excluded"],
            "benchmark_images": info["distinct_benchmark_images"],
        }
    return out
