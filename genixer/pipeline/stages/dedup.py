"""The dedup stage: generated samples that repeat are dropped before scoring.

It runs after ``generate`` (records parsed), so changing its settings re-runs only it and
what follows, never the generation. A record's key is its turns' questions, options and
answers, each normalized with the VQA answer normalization (case, punctuation, articles,
number words, contractions); ``[...]`` groups (boxes, points) are kept verbatim, spaces
removed. Records are visited in id order, so what is kept does not depend on batch size or
process count:

- ``same_image`` (on by default): a record whose key repeats an earlier record's key for the
  same image adds nothing and is dropped;
- ``corpus_max`` (off by default): at most this many images may carry one key across the
  corpus; later ones are dropped. Short answers legitimately repeat across images ("Is there
  a dog? Yes"), so this is a cap against the generator collapsing onto a few samples, not an
  exact-repeat rule.

Every drop is counted (``generation.duplicates`` in the summary) and written to the stage's
``skipped.jsonl`` with the id it duplicates.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from genixer.core.boxes import BoxParseError, find_brackets
from genixer.core.ledger import SkipLedger
from genixer.core.record import QA, Record, read_records, write_jsonl
from genixer.core.text import normalize_answer
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.generate import load_records

RECORDS = "records.jsonl"


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
    """``records.jsonl`` (kept) and ``skipped.jsonl`` (dropped)."""
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


def read_deduplicated(folder: Path) -> list[Record]:
    """The records the dedup stage kept: what scoring, selection and export read."""
    return read_records(folder / RECORDS)


class Dedup(Stage):
    name, version, phase = "dedup", 1, "generate"
    reads = {"generate": "generate"}

    def key(self, ctx: RunContext) -> dict:
        d = ctx.cfg.dedup
        return {
            "same_image": bool(d.same_image),
            "corpus_max": d.corpus_max,
            "normalization": normalization_fingerprint(),
        }

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        d = ctx.cfg.dedup
        records = load_records(inputs["generate"].path)
        return run_dedup(records, folder, bool(d.same_image), d.corpus_max)

    def summarize(self, ctx: RunContext, results) -> dict:
        deduped, decontaminated = results["dedup"], results.get("decontaminate")
        block = {
            "duplicates": deduped.info["duplicates"],
            "num_deduplicated": deduped.info["num_records"],
            "deduplicated_records": str(deduped.path / RECORDS),
            "decontaminated": None,
        }
        if decontaminated is not None:
            info = decontaminated.info
            block["decontaminated"] = {
                "excluded_images": info["excluded"],
                "benchmark_images": info["distinct_benchmark_images"],
            }
        return {"generation": block}
