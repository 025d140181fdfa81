"""The schema of a generated sample, and JSONL io with atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class QA:
    """One question-answer pair. For multiple choice, ``answer`` is the letter and
    ``options`` the choices in order. ``kind`` is the world's question kind, when known."""

    question: str
    answer: str
    options: list[str] | None = None
    kind: str | None = None
    boxes: list[list[float]] | None = None  # grounding tasks: boxes the pair refers to

    def answer_text(self) -> str:
        """The answer in words (the chosen option for multiple choice)."""
        if self.options is None:
            return self.answer
        idx = ord(self.answer.strip()[:1].upper() or "?") - ord("A")
        return self.options[idx] if 0 <= idx < len(self.options) else ""


@dataclass
class Record:
    id: str
    image_id: str
    image: str  # path relative to the world root
    task: str  # the task the sample is (detected, in task-agnostic mode)
    requested_task: str  # the task the generator was asked for ("generic" = agnostic)
    turns: list[QA]
    raw: str  # the generated text, kept for audit
    provenance: dict = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    oracle: bool | None = None  # true of its scene? None where the world has no truth

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> Record:
        d = dict(d)
        d["turns"] = [QA(**t) for t in d["turns"]]
        return cls(**d)


def record_id(image_id: str, task: str, template_id: str, generator: str, seed: int) -> str:
    key = f"{image_id}|{task}|{template_id}|{generator}|{seed}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def stable_seed(*parts: object) -> int:
    """A 31-bit seed from any parts, stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def write_jsonl(path: str | Path, rows: Iterable[str | dict]) -> int:
    """Write lines to ``path`` atomically (temp file + rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temp file per process: ranks of one job writing the same file never share it.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    n = 0
    with open(tmp, "w") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row, sort_keys=True)) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n


def read_jsonl(path: str | Path) -> Iterator[dict]:
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_records(path: str | Path) -> list[Record]:
    return [Record.from_dict(d) for d in read_jsonl(path)]
