"""What every dataset converter shares: the labeled :class:`Sample`, the skip ledger, image
lookup that stays inside the data root, pixel-box checks, and the guarded record loop.

A converter reads one public dataset in its own file layout and yields samples for one of
the 9 tasks, each a list of :class:`~genixer.core.record.QA` turns in the task's own text form
(the same turns ``Task.sample`` makes on the built-in world). A record that cannot become a
valid sample (a missing field, a box outside its image, an image id with no file, a repeated
question id, a sample its task's parser would reject) is skipped, counted by reason and
written to the ledger with its source file and position: never a crash mid-file, never a
silent drop. A missing or unreadable annotation FILE is a configuration error and raises.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import pickle
import posixpath
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from genixer.core.boxes import Box, normalize, overhang
from genixer.core.record import QA, write_jsonl
from genixer.tasks import ParseError, get_task
from genixer.world.base import safe_join

SKIPPED = "skipped.jsonl"


class Skip(Exception):  # noqa: N818 - a control-flow signal, not an error of the program
    """One record (or ``records`` of them, e.g. every region of a missing image) is dropped;
    ``reason`` is a short code, ``detail`` says what was wrong."""

    def __init__(self, reason: str, detail: str = "", records: int = 1) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.records = records


def image_key(rel: str) -> str:
    """A stable image id from the image's path relative to the data root."""
    return hashlib.sha1(rel.encode()).hexdigest()[:16]


@dataclass
class Sample:
    """One labeled sample of one task, from one source record."""

    dataset: str  # the dataset's name in the mix, e.g. "vqav2", "refcoco+"
    source_id: str  # the record's own id (question id, sentence id, ...), for audit
    image: str  # path relative to the data root, posix, never escaping it
    task: str
    turns: list[QA]
    image_id: str = ""  # stable id: a hash of the path the converter found the image at

    def __post_init__(self) -> None:
        self.image_id = self.image_id or image_key(self.image)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "source_id": self.source_id,
            "image": self.image,
            "image_id": self.image_id,
            "task": self.task,
            "turns": [asdict(t) for t in self.turns],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Sample:
        turns = [QA(**t) for t in d["turns"]]
        return cls(
            d["dataset"], d["source_id"], d["image"], d["task"], turns, image_id=d["image_id"]
        )


class ConversionLedger:
    """Every skipped record with its reason, source file and position; counts by dataset and
    reason. Rows carry ``stage: world`` like the other stages' ledgers."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.counts: dict[str, Counter] = {}

    def skip(
        self,
        dataset: str,
        reason: str,
        source: str,
        where: str,
        *,
        detail: str = "",
        records: int = 1,
    ) -> None:
        self.counts.setdefault(dataset, Counter())[reason] += records
        row = {
            "stage": "world",
            "dataset": dataset,
            "reason": reason,
            "source": source,
            "where": where,
        }
        if detail:
            row["detail"] = detail[:200]
        if records != 1:
            row["records"] = records
        self.rows.append(row)

    def reasons(self, dataset: str) -> dict[str, int]:
        return dict(sorted(self.counts.get(dataset, Counter()).items()))

    def total(self, dataset: str | None = None) -> int:
        if dataset is not None:
            return sum(self.counts.get(dataset, Counter()).values())
        return sum(sum(c.values()) for c in self.counts.values())

    def write(self, path: str | Path) -> int:
        return write_jsonl(path, self.rows)


# --- reading annotation files -------------------------------------------------------------


class _DupDict(dict):
    """A JSON object that had repeated keys (json keeps the last one silently)."""

    duplicates: Counter


def _pairs_hook(pairs: list[tuple[str, object]]) -> dict:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    out = _DupDict(d)
    out.duplicates = Counter(k for k, _ in pairs) - Counter(d.keys())
    return out


def load_json(path: Path) -> tuple[object, Counter]:
    """A JSON file, and the keys its top-level object repeated (with how many extra times)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    return data, getattr(data, "duplicates", Counter())


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict | Skip]]:
    """``(line number, object)`` per non-blank line; a bad line comes as a :class:`Skip`."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                yield n, Skip("bad_json", str(err))
                continue
            yield n, obj if isinstance(obj, dict) else Skip("bad_value", "not an object")


class _PlainDataUnpickler(pickle.Unpickler):
    """Reads pickles of plain data only (dicts, lists, strings, numbers): any class or
    function reference is refused, so no code from the file can run."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only plain data is read")


def load_plain_pickle(path: Path) -> object:
    """A pickle of plain data (e.g. REFER's ``refs(unc).p``), read without running code."""
    with open(path, "rb") as f:
        return _PlainDataUnpickler(f, encoding="utf-8", errors="replace").load()


# --- images and boxes -------------------------------------------------------------------


class ImageFiles:
    """Image paths relative to the data root: checked to exist and to stay inside the root;
    sizes read from the file header once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._found: dict[str, bool] = {}
        self._size: dict[str, tuple[int, int]] = {}

    def find(self, *candidates: str) -> str:
        """The first candidate path that is a file under the root."""
        for rel in candidates:
            rel = posixpath.normpath(rel.replace("\\", "/"))
            if rel not in self._found:
                try:
                    self._found[rel] = os.path.isfile(safe_join(self.root, rel))
                except ValueError:
                    raise Skip("image_path_escapes_root", rel) from None
            if self._found[rel]:
                return rel
        raise Skip("image_not_found", ", ".join(candidates))

    def size(self, rel: str) -> tuple[int, int]:
        if rel not in self._size:
            try:
                with Image.open(safe_join(self.root, rel)) as im:
                    self._size[rel] = im.size
            except (OSError, ValueError) as err:
                raise Skip("unreadable_image", f"{rel}: {err}") from None
        return self._size[rel]


def _numbers(values: object, n: int, what: str) -> list[float]:
    try:
        vals = [float(v) for v in values]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise Skip(f"bad_{what}", repr(values)[:60]) from None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise Skip(f"bad_{what}", repr(values)[:60])
    return vals


def check_box(box_px: object, width: float, height: float, tolerance: float) -> Box:
    """A pixel ``(x0, y0, x1, y1)`` box -> normalized to its image. ``empty_box`` for zero
    area, ``box_outside_image`` when it reaches more than ``tolerance`` px past the image
    (within it, the box is clipped: annotations often overhang by a pixel)."""
    x0, y0, x1, y1 = _numbers(box_px, 4, "box")
    if x1 <= x0 or y1 <= y0:
        raise Skip("empty_box", f"{[x0, y0, x1, y1]}")
    out = overhang((x0, y0, x1, y1), width, height)
    if out > tolerance:
        raise Skip("box_outside_image", f"{[x0, y0, x1, y1]} in {width}x{height}")
    return normalize((x0, y0, x1, y1), int(width), int(height))


def check_point(point_px: object, width: float, height: float, tolerance: float):
    """A pixel ``(x, y)`` point -> normalized; ``point_outside_image`` past the tolerance."""
    x, y = _numbers(point_px, 2, "point")
    if overhang((x, y, x, y), width, height) > tolerance:
        raise Skip("point_outside_image", f"{[x, y]} in {width}x{height}")
    return normalize((x, y, x, y), int(width), int(height))[:2]


def chunk_sizes(n: int, lo: int, hi: int) -> list[int]:
    """Split ``n`` turns into as few dialogues of ``lo..hi`` turns as possible, evenly;
    ``[]`` when ``n < lo``."""
    if n < lo:
        return []
    k = math.ceil(n / hi)
    base, extra = divmod(n, k)
    return [base + 1] * extra + [base] * (k - extra)


# --- the converter base -----------------------------------------------------------------


class Converter:
    """Base of every converter. Subclasses set ``name`` and ``tasks`` (the first is the
    default), and implement :meth:`records` (``(where, raw)`` pairs, or ``(where, Skip)``)
    and :meth:`build` (raw -> samples, raising :class:`Skip` for a bad record, or listing a
    :class:`Skip` in place of one bad part of it). Records a config leaves out on purpose
    (another split) are counted in ``excluded``, not skipped."""

    name: str = ""
    tasks: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # the arguments that name annotation files

    def __init__(
        self,
        root: str | Path,
        task: str | None = None,
        image_dir: str = "",
        label: str | None = None,
        box_tolerance_px: float = 2.0,
    ) -> None:
        self.root = Path(root)
        self.task = task or self.tasks[0]
        if self.task not in self.tasks:
            raise ValueError(f"{self.name} converts to {list(self.tasks)}, not {self.task!r}")
        self.image_dir = image_dir or ""
        self.label = label or self.name
        self.tolerance = float(box_tolerance_px)
        self.images = ImageFiles(self.root)
        self.source = ""  # the file being read, relative to the root (for the ledger)
        self._seen: set = set()
        self.excluded: Counter = Counter()
        self._task = get_task(self.task)

    # --- for subclasses ---
    def records(self) -> Iterator[tuple[str, object]]:
        raise NotImplementedError

    def build(self, raw) -> list[Sample | Skip]:
        raise NotImplementedError

    def file(self, rel: str) -> Path:
        """An annotation file under the root; a missing one is a configuration error."""
        path = safe_join(self.root, rel)
        if not path.is_file():
            raise FileNotFoundError(f"{self.label}: annotation file not found: {path}")
        self.source = rel
        return path

    def image(self, *names: str) -> str:
        """An image's path relative to the root, from names relative to ``image_dir``."""
        return self.images.find(*(posixpath.join(self.image_dir, n) for n in names))

    def unique(self, key: object) -> None:
        if key in self._seen:
            raise Skip("duplicate_id", str(key))
        self._seen.add(key)

    def sample(self, source_id: object, image: str, turns: list[QA]) -> Sample:
        for t in turns:
            t.kind = t.kind or self.label
        return Sample(self.label, str(source_id), image, self.task, turns)

    # --- the guarded loop ---
    def convert(self, ledger: ConversionLedger) -> Iterator[Sample]:
        for where, raw in self.records():
            if isinstance(raw, Skip):
                self._skip(ledger, where, raw)
                continue
            try:
                built = self.build(raw)
            except Skip as s:
                self._skip(ledger, where, s)
                continue
            except KeyError as err:
                self._skip(ledger, where, Skip("missing_field", str(err)))
                continue
            except (TypeError, ValueError, IndexError, AttributeError) as err:
                self._skip(ledger, where, Skip("bad_value", f"{type(err).__name__}: {err}"))
                continue
            for s in built:
                if isinstance(s, Skip):  # one part of the record (e.g. one sentence) is bad
                    self._skip(ledger, where, s)
                    continue
                try:
                    self._task.parse(self._task.serialize(s.turns))
                except ParseError as err:
                    self._skip(
                        ledger,
                        f"{where} ({s.source_id})",
                        Skip(f"unparsable_{err.reason}", str(err)),
                    )
                    continue
                yield s

    def _skip(self, ledger: ConversionLedger, where: str, s: Skip) -> None:
        ledger.skip(self.label, s.reason, self.source, where, detail=s.detail, records=s.records)


def skips_of(items: Iterable[tuple[str, int]]) -> Iterator[tuple[str, Skip]]:
    """``(where, Skip)`` for each top-level key a JSON object repeated."""
    for key, extra in items:
        yield f"id {key}", Skip("duplicate_id", f"{key} appears {extra + 1} times", extra)


def top_level(data: object, key: str, path: str) -> object:
    """``data[key]`` of a file's top-level object; a file without it is the wrong file."""
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"{path}: expected a JSON object with a {key!r} field")
    return data[key]


def check_arguments(cls: type[Converter], args: dict) -> None:
    """Refuse unknown or missing converter arguments before anything is read (the config
    check of ``world=collection``); ``root`` is given by the world."""
    names, required = set(), set()
    for klass in (cls, Converter):
        for p in list(inspect.signature(klass.__init__).parameters.values())[2:]:
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            names.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    unknown = sorted(set(args) - names)
    if unknown:
        raise ValueError(f"{cls.name}: unexpected argument(s) {unknown}; known: {sorted(names)}")
    missing = sorted(n for n in required if args.get(n) is None)
    if missing:
        raise ValueError(f"{cls.name}: missing argument(s) {missing}")
