"""The paper's benchmarks, read from their own released files into one item form.

Each loader takes the files a researcher downloads (``--annotations``) and returns
``{question_id: Item}``; a record that cannot be used goes to the skip ledger with its reason
(``missing_field``, ``duplicate_question_id``, ``bad_box``, ...), never a crash mid-file.

| name | files | question_id | image (under the image folder) | truth -> metric |
|---|---|---|---|---|
| vqav2 | ``v2_OpenEnded_mscoco_<split>_questions.json`` [+ ``v2_mscoco_<split>_annotations.json``] | question_id | ``COCO_<split>_<image_id:012d>.jpg`` | 10 answers -> vqa |
| vizwiz | ``<split>.json`` | the image file name | image | 10 answers -> vqa |
| textvqa | ``TextVQA_0.5.1_<split>.json`` | question_id | ``<image_id>.jpg`` | 10 answers -> vqa |
| gqa | ``testdev_balanced_questions.json`` | the question key | ``<imageId>.jpg`` | answer -> exact |
| pope | ``coco_pope_<kind>.json`` (jsonl) or LLaVA's merged jsonl | question_id (``<kind>:<id>`` for several files) | image | label -> pope |
| scienceqa | ``problems.json`` (image questions of ``split``) | problem id | ``<split>/<pid>/<image>`` | letter -> mc |
| mmbench | ``MMBench_<split>.tsv`` (images inline, base64) | index | ``<index>.jpg`` (written by ``prepare``) | letter -> mc |
| seed | ``SEED-Bench.json`` (image questions) | question_id | data_id | letter -> mc |
| rec | Shikra's REC jsonl (``img_path, expression, bbox`` px, ``width, height``) | line number (``<file>:<n>`` for several files) | img_path | box -> rec |

Prompts are LLaVA-1.5's evaluation wording (:mod:`genixer.tasks.templates`); REC uses the
project's REC question (:data:`genixer.tasks.rec.QUESTION`). Truth is None for test splits
without answers: such items can be prepared and answered but are not scored.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genixer.core.boxes import normalize
from genixer.core.ledger import SkipLedger
from genixer.core.record import read_jsonl
from genixer.tasks.mcvqa import format_options
from genixer.tasks.rec import QUESTION as REC_QUESTION
from genixer.tasks.templates import MC_ANSWER_HINT, SHORT_ANSWER_HINT, UNANSWERABLE_HINT

LETTERS = "ABCDEFGHIJ"


@dataclass
class Item:
    question_id: str  # always a string; answers files are matched on str(question_id)
    image: str  # path relative to the image folder
    prompt: str  # the LLaVA question file's "text"
    truth: Any = None  # list[str] | str | letter | normalized box; None: not scored
    category: str = ""
    num_options: int = 0
    size: tuple[int, int] | None = None  # REC: (width, height) of the original image
    image_b64: str | None = None  # MMBench: the image itself


@dataclass(frozen=True)
class Benchmark:
    name: str
    metric: str  # vqa | exact | pope | mc | rec
    load: Callable[[list[Path], SkipLedger, str], dict[str, Item]]
    files: str  # what --annotations takes, for messages


def _read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


class _Items(dict):
    """``{qid: Item}`` refusing duplicate ids and records missing fields, into a ledger."""

    def __init__(self, ledger: SkipLedger, source: Path) -> None:
        super().__init__()
        self.ledger = ledger
        self.source = source

    def ok(self, record: Any, fields: tuple[str, ...], qid: Any = None) -> bool:
        if not isinstance(record, dict):
            self.ledger.add(
                "bad_record", path=str(self.source), id=str(qid), detail=str(record)[:80]
            )
            return False
        missing = [f for f in fields if record.get(f) in (None, "")]
        if missing:
            self.ledger.add(
                "missing_field", path=str(self.source), id=str(qid), detail=",".join(missing)
            )
        return not missing

    def put(self, item: Item) -> None:
        if item.question_id in self:
            self.ledger.add("duplicate_question_id", path=str(self.source), id=item.question_id)
            return
        self[item.question_id] = item


def _short(question: str) -> str:
    return f"{question.strip()}\n{SHORT_ANSWER_HINT}"


def _mc_prompt(question: str, options: list[str], hint: str = "") -> str:
    context = f"{hint.strip()}\n" if hint and hint.strip() else ""
    return f"{context}{question.strip()}\n{format_options(options)}\n{MC_ANSWER_HINT}"


def _answers(record: dict) -> list[str] | None:
    raw = record.get("answers")
    if not raw:
        return None
    return [a["answer"] if isinstance(a, dict) else str(a) for a in raw]


def _one(paths: list[Path], name: str) -> Path:
    if len(paths) != 1:
        raise ValueError(f"{name} takes one annotation file, got {len(paths)}")
    return paths[0]


# ----------------------------------------------------------------------------- VQA family
def load_vqav2(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    by_kind = {}
    for p in paths:
        data = _read_json(p)
        kind = (
            "questions" if "questions" in data else "annotations" if "annotations" in data else None
        )
        if kind is None:
            raise ValueError(f"{p} is neither a VQAv2 questions nor annotations file")
        by_kind[kind] = (p, data)
    if "questions" not in by_kind:
        raise ValueError("vqav2 needs the questions json (and the annotations json to score)")
    qpath, qdata = by_kind["questions"]
    subtype = qdata.get("data_subtype", "val2014")
    anns = {}
    if "annotations" in by_kind:
        anns = {str(a.get("question_id")): a for a in by_kind["annotations"][1]["annotations"]}
    items = _Items(ledger, qpath)
    for q in qdata["questions"]:
        if not items.ok(
            q,
            ("question_id", "image_id", "question"),
            q.get("question_id") if isinstance(q, dict) else None,
        ):
            continue
        qid = str(q["question_id"])
        truth, category = None, ""
        if anns:
            ann = anns.get(qid)
            if ann is None or not _answers(ann):
                ledger.add("no_annotation", path=str(qpath), id=qid)
                continue
            truth, category = _answers(ann), ann.get("answer_type", "")
        image = f"COCO_{subtype}_{int(q['image_id']):012d}.jpg"
        items.put(Item(qid, image, _short(q["question"]), truth, category))
    return dict(items)


def load_vizwiz(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    path = _one(paths, "vizwiz")
    items = _Items(ledger, path)
    for i, rec in enumerate(_read_json(path)):
        if not items.ok(rec, ("image", "question"), i):
            continue
        prompt = f"{rec['question'].strip()}\n{UNANSWERABLE_HINT}\n{SHORT_ANSWER_HINT}"
        truth = _answers(rec)
        items.put(Item(rec["image"], rec["image"], prompt, truth, rec.get("answer_type", "")))
    return dict(items)


def load_textvqa(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    path = _one(paths, "textvqa")
    items = _Items(ledger, path)
    for rec in _read_json(path)["data"]:
        if not items.ok(rec, ("question_id", "image_id", "question"), rec.get("question_id")):
            continue
        qid = str(rec["question_id"])
        items.put(Item(qid, f"{rec['image_id']}.jpg", _short(rec["question"]), _answers(rec)))
    return dict(items)


def load_gqa(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    path = _one(paths, "gqa")
    items = _Items(ledger, path)
    for qid, rec in _read_json(path).items():
        if not items.ok(rec, ("imageId", "question"), qid):
            continue
        category = (rec.get("types") or {}).get("structural", "")
        truth = rec.get("answer")
        items.put(Item(str(qid), f"{rec['imageId']}.jpg", _short(rec["question"]), truth, category))
    return dict(items)


def load_pope(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    """POPE files are jsonl whatever their extension; the category is the record's own
    ``category`` or the file's kind (``coco_pope_adversarial.json`` -> ``adversarial``)."""
    out: dict[str, Item] = {}
    for path in paths:
        kind = path.stem.rsplit("_", 1)[-1]
        items = _Items(ledger, path)
        for rec in read_jsonl(path):
            if not items.ok(rec, ("question_id", "image", "text"), rec.get("question_id")):
                continue
            label = str(rec.get("label", "")).strip().lower() or None
            if label not in (None, "yes", "no"):
                ledger.add("bad_label", path=str(path), id=str(rec["question_id"]), detail=label)
                continue
            qid = str(rec["question_id"]) if len(paths) == 1 else f"{kind}:{rec['question_id']}"
            text = rec["text"].strip()
            prompt = text if SHORT_ANSWER_HINT in text else _short(text)
            items.put(Item(qid, rec["image"], prompt, label, rec.get("category") or kind))
        _merge(out, items, ledger, path)
    return out


def _merge(out: dict[str, Item], items: dict[str, Item], ledger: SkipLedger, path: Path) -> None:
    for qid, item in items.items():
        if qid in out:
            ledger.add("duplicate_question_id", path=str(path), id=qid)
        else:
            out[qid] = item


# ----------------------------------------------------------------------------- multiple choice
def load_scienceqa(paths: list[Path], ledger: SkipLedger, split: str = "test") -> dict[str, Item]:
    """SQA-IMG: the problems of ``split`` that have an image (others: ``no_image``)."""
    path = _one(paths, "scienceqa")
    items = _Items(ledger, path)
    for pid, rec in _read_json(path).items():
        if not isinstance(rec, dict) or rec.get("split") != (split or "test"):
            continue
        if not rec.get("image"):
            ledger.add("no_image", path=str(path), id=str(pid))
            continue
        if not items.ok(rec, ("question", "choices"), pid):
            continue
        choices = list(rec["choices"])
        answer = rec.get("answer")
        if answer is not None and not (isinstance(answer, int) and 0 <= answer < len(choices)):
            ledger.add("bad_answer", path=str(path), id=str(pid), detail=str(answer))
            continue
        hint = rec.get("hint") or ""
        prompt = _mc_prompt(rec["question"], choices, f"Context: {hint}" if hint else "")
        truth = LETTERS[answer] if answer is not None else None
        image = f"{rec.get('split')}/{pid}/{rec['image']}"
        category = rec.get("subject", "")
        items.put(Item(str(pid), image, prompt, truth, category=category, num_options=len(choices)))
    return dict(items)


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() not in ("", "nan", "NaN", "None")


def load_mmbench(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    """MMBench TSV (one question per row, the image as base64, options in columns A-D)."""
    path = _one(paths, "mmbench")
    csv.field_size_limit(sys.maxsize)  # the image column is long
    items = _Items(ledger, path)
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if not items.ok(row, ("index", "question", "image"), row.get("index")):
                continue
            options = [row[c] for c in "ABCD" if _present(row.get(c))]
            if len(options) < 2:
                ledger.add("too_few_options", path=str(path), id=row["index"])
                continue
            hint = row.get("hint") if _present(row.get("hint")) else ""
            truth = row["answer"].strip() if _present(row.get("answer")) else None
            if truth is not None and truth not in LETTERS[: len(options)]:
                ledger.add("bad_answer", path=str(path), id=row["index"], detail=truth)
                continue
            item = Item(
                row["index"],
                f"{row['index']}.jpg",
                _mc_prompt(row["question"], options, hint),
                truth,
                category=row.get("category", ""),
                num_options=len(options),
                image_b64=row["image"],
            )
            items.put(item)
    return dict(items)


def load_seed(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    """SEED-Bench's image questions (SEED-I); video questions are left out (``video``)."""
    path = _one(paths, "seed")
    data = _read_json(path)
    type_names = {v: k for k, v in (data.get("question_type") or {}).items()}
    items = _Items(ledger, path)
    for rec in data["questions"]:
        fields = ("question_id", "question", "data_id", "choice_a", "choice_b")
        if not items.ok(rec, fields, rec.get("question_id") if isinstance(rec, dict) else None):
            continue
        if rec.get("data_type", "image") != "image":
            ledger.add("video", path=str(path), id=str(rec["question_id"]))
            continue
        options = [rec[f"choice_{c}"] for c in "abcd" if _present(rec.get(f"choice_{c}"))]
        truth = rec.get("answer")
        if truth is not None and truth not in LETTERS[: len(options)]:
            ledger.add("bad_answer", path=str(path), id=str(rec["question_id"]), detail=str(truth))
            continue
        category = type_names.get(rec.get("question_type_id"), str(rec.get("question_type_id", "")))
        items.put(
            Item(
                str(rec["question_id"]),
                rec["data_id"],
                _mc_prompt(rec["question"], options),
                truth,
                category=category,
                num_options=len(options),
            )
        )
    return dict(items)


# ----------------------------------------------------------------------------- REC
def load_rec(paths: list[Path], ledger: SkipLedger, split: str = "") -> dict[str, Item]:
    """Shikra-format REC files (RefCOCO/+/g splits); truth is the box normalized to the
    original image. A box outside its image (by more than a pixel) or inverted is refused."""
    out: dict[str, Item] = {}
    for path in paths:
        items = _Items(ledger, path)
        for n, rec in enumerate(read_jsonl(path)):
            qid = str(n) if len(paths) == 1 else f"{path.stem}:{n}"
            if not items.ok(rec, ("img_path", "expression", "bbox", "width", "height"), qid):
                continue
            w, h = int(rec["width"]), int(rec["height"])
            box = [float(v) for v in rec["bbox"]]
            if len(box) != 4 or w <= 0 or h <= 0 or box[2] <= box[0] or box[3] <= box[1]:
                ledger.add("bad_box", path=str(path), id=qid, detail=str(rec["bbox"]))
                continue
            if min(box) < -1 or box[2] > w + 1 or box[3] > h + 1:
                ledger.add("box_outside_image", path=str(path), id=qid, detail=str(rec["bbox"]))
                continue
            prompt = REC_QUESTION.format(expression=rec["expression"].strip())
            category = rec.get("dataset_name") or path.stem
            items.put(
                Item(
                    qid, rec["img_path"], prompt, list(normalize(box, w, h)), category, size=(w, h)
                )
            )
        _merge(out, items, ledger, path)
    return out


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("vqav2", "vqa", load_vqav2, "questions json [+ annotations json]"),
        Benchmark("vizwiz", "vqa", load_vizwiz, "<split>.json"),
        Benchmark("textvqa", "vqa", load_textvqa, "TextVQA_0.5.1_<split>.json"),
        Benchmark("gqa", "exact", load_gqa, "<split>_balanced_questions.json"),
        Benchmark("pope", "pope", load_pope, "coco_pope_<kind>.json files (jsonl)"),
        Benchmark("scienceqa", "mc", load_scienceqa, "problems.json"),
        Benchmark("mmbench", "mc", load_mmbench, "MMBench_<split>.tsv"),
        Benchmark("seed", "mc", load_seed, "SEED-Bench.json"),
        Benchmark("rec", "rec", load_rec, "Shikra REC jsonl files"),
    )
}


def load_benchmark(
    name: str, paths: list[str | Path], split: str = ""
) -> tuple[dict[str, Item], SkipLedger]:
    """Items of benchmark ``name`` from its files, and the ledger of what was left out."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; one of {sorted(BENCHMARKS)}")
    files = [Path(p) for p in paths]
    for p in files:
        if not p.is_file():
            raise FileNotFoundError(f"{name}: no file at {p} (expects {BENCHMARKS[name].files})")
    ledger = SkipLedger(f"benchmark:{name}")
    return BENCHMARKS[name].load(files, ledger, split), ledger
