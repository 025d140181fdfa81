"""Training data read from LLaVA-format files on demand: a 665K-record, ~1 GB JSON is never
held in memory.

- :func:`scan_records` walks a JSON array (or JSON lines) once, one record at a time,
  giving each record's byte offset and size; :func:`index_file` keeps only those and a
  cheap length estimate (text characters) of the usable records, and ledgers the others
  with their reason (text-only, roles that do not alternate, ...). :func:`cached_index`
  stores the index beside the run's cache, named by the file's path, size and mtime.
- :class:`StreamedFile` is a seeded choice of a file's records (all of them, a ratio or a
  count), each read by seeking to its offset and its image opened through the project's
  safe reader (:mod:`genixer.core.images`).
- :class:`MixedDataset` concatenates parts: examples encoded up front
  (:class:`~genixer.training.data.EncodedDataset`, the built-in world's small sets) and
  streamed files. A streamed record that cannot be used when it is read (a missing or
  corrupt image, a conversation longer than the model takes) is ledgered once and replaced
  by the next record of its file, so batches keep their size and a run its determinism.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from genixer.core.chat import ConversationError, llava_turns
from genixer.core.images import ImageError, open_rgb, safe_join
from genixer.core.ledger import SkipLedger
from genixer.core.record import read_jsonl, stable_seed, write_jsonl

log = logging.getLogger(__name__)

INDEX_VERSION = 1
CHUNK = 1 << 22  # characters read at a time
MAX_RECORD = 1 << 26  # a record longer than this is taken as a broken file
MAX_TRIES = 64  # records tried in a row before a file is taken as unusable
_SEPARATORS = " \t\r\n,"


class BadFileError(ValueError):
    """A file that is not a JSON array or JSON lines of objects."""


def _decoded(f) -> Iterator[str]:
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := f.read(CHUNK):
        yield dec.decode(chunk)
    yield dec.decode(b"", final=True)


def scan_records(path: str | Path) -> Iterator[tuple[int, int, object]]:
    """``(byte offset, byte size, value)`` of each top-level record of a JSON array or of a
    JSON lines file, in file order; only one record is decoded at a time. A syntax error
    ends the scan with a :class:`BadFileError` as the last value."""
    decoder = json.JSONDecoder()
    with open(path, "rb") as f:
        chunks = _decoded(f)
        buf, pos, byte_pos, eof, opened = "", 0, 0, False, False
        while True:
            while pos < len(buf) and buf[pos] in _SEPARATORS:
                pos, byte_pos = pos + 1, byte_pos + 1
            if pos < len(buf) and not opened and buf[pos] == "[":
                pos, byte_pos, opened = pos + 1, byte_pos + 1, True
                continue
            opened = opened or pos < len(buf)
            if pos < len(buf) and buf[pos] == "]":
                return
            try:
                if pos >= len(buf):
                    raise json.JSONDecodeError("need data", buf, pos)
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as err:
                if eof or len(buf) - pos > MAX_RECORD:
                    if pos < len(buf):
                        yield byte_pos, 0, BadFileError(f"{path}: byte {byte_pos}: {err.msg}")
                    return
                more = next(chunks, None)
                eof = more is None
                buf, pos = buf[pos:] + (more or ""), 0
                continue
            size = len(buf[pos:end].encode("utf-8"))
            yield byte_pos, size, value
            pos, byte_pos = end, byte_pos + size


def llava_example(record: object) -> tuple[str, list[tuple[str, str]]]:
    """``(image path, turns)`` of one LLaVA training entry, or :class:`ConversationError`."""
    if not isinstance(record, dict):
        raise ConversationError("bad_record", "not an object")
    image = record.get("image")
    if image is None:
        raise ConversationError("no_image", "a text-only conversation")
    if not isinstance(image, str) or not image:
        raise ConversationError("bad_image_field", str(image)[:80])
    return image, llava_turns(record.get("conversations"))


@dataclass(frozen=True)
class FileIndex:
    """Where each usable record of a file lies, and its length in text characters."""

    offsets: np.ndarray
    sizes: np.ndarray
    chars: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets)


def index_file(path: str | Path, ledger: SkipLedger) -> FileIndex:
    """One pass over a LLaVA-format file: the usable records' places; the others ledgered."""
    offsets, sizes, chars = [], [], []
    for n, (offset, size, record) in enumerate(scan_records(path)):
        if isinstance(record, BadFileError):
            ledger.add("unreadable_rest", path=str(path), id=f"record {n}", detail=str(record))
            break
        try:
            _, turns = llava_example(record)
        except ConversationError as err:
            rid = record.get("id") if isinstance(record, dict) else None
            ledger.add(err.reason, path=str(path), id=str(rid or f"record {n}"), detail=err.detail)
            continue
        offsets.append(offset)
        sizes.append(size)
        chars.append(sum(len(q) + len(a) for q, a in turns))
    return FileIndex(
        np.asarray(offsets, np.int64), np.asarray(sizes, np.int64), np.asarray(chars, np.int64)
    )


def file_fingerprint(path: str | Path) -> dict:
    """What identifies a file's content cheaply: its resolved path, size and mtime."""
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cached_index(path: str | Path, cache_dir: str | Path, ledger: SkipLedger) -> FileIndex:
    """:func:`index_file`, stored in ``cache_dir`` (with its ledger rows) and re-used while
    the file's path, size and mtime stay the same."""
    key = json.dumps([INDEX_VERSION, file_fingerprint(path)], sort_keys=True)
    stem = Path(cache_dir) / hashlib.sha256(key.encode()).hexdigest()[:16]
    npz, rows = stem.with_suffix(".npz"), stem.with_suffix(".skipped.jsonl")
    if npz.is_file() and rows.is_file():
        data = np.load(npz)
        for row in read_jsonl(rows):
            ledger.add(**{k: v for k, v in row.items() if k != "stage"})
        return FileIndex(data["offsets"], data["sizes"], data["chars"])
    own = SkipLedger(ledger.stage)
    index = index_file(path, own)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_suffix(f".{os.getpid()}.tmp.npz")  # one per process (DDP ranks)
    np.savez(tmp, offsets=index.offsets, sizes=index.sizes, chars=index.chars)
    write_jsonl(rows, own.rows)
    os.replace(tmp, npz)
    for row in own.rows:
        ledger.add(**{k: v for k, v in row.items() if k != "stage"})
    return index


def pick(n: int, *, seed: int, ratio: float | None = None, count: int | None = None):
    """Which of ``n`` records a run uses: all in file order (neither given), or ``round(ratio
    * n)`` / ``count`` of them in a seeded order (each record once before any twice)."""
    if ratio is None and count is None:
        return np.arange(n, dtype=np.int64)
    m = int(count) if count is not None else round(float(ratio) * n)
    if n == 0 or m <= 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    tiles = [rng.permutation(n) for _ in range(-(-m // n))]
    return np.concatenate(tiles)[:m].astype(np.int64)


class StreamedFile:
    """The chosen records of one LLaVA-format file, read one at a time by offset."""

    def __init__(
        self, path: str | Path, images: str | Path, index: FileIndex, picks: np.ndarray
    ) -> None:
        self.path, self.images = str(path), str(images)
        self.offsets, self.sizes = index.offsets[picks], index.sizes[picks]
        self.chars = index.chars[picks]
        self._handle: tuple[int, object] | None = None  # (pid, file): one per process

    def __len__(self) -> int:
        return len(self.offsets)

    def _file(self):
        if self._handle is None or self._handle[0] != os.getpid():
            self._handle = (os.getpid(), open(self.path, "rb"))  # noqa: SIM115 - kept open
        return self._handle[1]

    def example(self, i: int):
        """``(record id, RGB image, turns)``; ImageError / ConversationError when unusable."""
        f = self._file()
        f.seek(int(self.offsets[i]))
        record = json.loads(f.read(int(self.sizes[i])))
        image, turns = llava_example(record)
        return str(record.get("id", i)), open_rgb(safe_join(self.images, image)), turns

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_handle"} | {"_handle": None}


class MixedDataset(Dataset):
    """Parts one after another: encoded ones (indexable, ``lengths``, ``skipped``) and
    :class:`StreamedFile` ones, encoded when read by ``encode(image, turns)``."""

    def __init__(self, parts: list, encode: Callable, ledger: SkipLedger) -> None:
        self.parts = [p for p in parts if len(p)]
        self.encode, self.ledger = encode, ledger
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self._seen: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def lengths(self) -> list[int]:
        out: list[int] = []
        for p in self.parts:
            out.extend(int(c) for c in (p.chars if isinstance(p, StreamedFile) else p.lengths))
        return out

    @property
    def skipped(self) -> dict[str, int]:
        counts = dict(self.ledger.counts)
        for p in self.parts:
            for reason, n in getattr(p, "skipped", {}).items():
                counts[reason] = counts.get(reason, 0) + n
        return counts

    def __getitem__(self, i: int) -> dict:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        part, j = self.parts[k], i - int(self.starts[k])
        if not isinstance(part, StreamedFile):
            return part[j]
        for attempt in range(MAX_TRIES):
            jj = (j + attempt) % len(part)
            try:
                _, image, turns = part.example(jj)
                return self.encode(image, turns)
            except (ImageError, ConversationError, ValueError, OSError) as err:
                self._ledger(k, jj, part, err)
        raise RuntimeError(f"{part.path}: {MAX_TRIES} records in a row cannot be used")

    def _ledger(self, k: int, j: int, part: StreamedFile, err: Exception) -> None:
        if (k, j) in self._seen:
            return
        self._seen.add((k, j))
        reason = getattr(err, "reason", None)
        if reason is None:
            reason = "too_long" if "length" in str(err) else "encode_error"
        elif isinstance(err, ImageError):
            reason = f"image_{reason}"
        where = f"offset {int(part.offsets[j])}"
        self.ledger.add(reason, path=part.path, id=where, detail=str(err)[:120])
        log.warning("skipping %s record at offset %d: %s", part.path, part.offsets[j], err)


def seed_for(seed: int, name: str) -> int:
    """The seed of one entry's choice of records."""
    return stable_seed(seed, f"data:{name}") % (2**32)
