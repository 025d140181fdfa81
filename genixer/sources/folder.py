"""Real unlabeled images as the generation pool (``world=folder``: the SBU / LCS / Flickr30K
role), beside a labeled ``base`` world that supplies every other split.

Sources: a folder tree (every file with an image extension, walked in sorted order), a
``.jsonl`` image list (one ``{"image": "rel/path.jpg", "id": ...}`` per line) or a ``.json``
list of such objects (LLaVA's LCS-558K file works as it is). Paths in lists are relative to
``image_root`` (default: the list's folder) and may not leave it.

Every candidate is checked once here, when the world stage runs: it is fully decoded (see
:mod:`genixer.core.images`), hashed, and either stored in the world folder or written to the
skip ledger ``skipped.jsonl`` with its reason. A stored image's id is the first 16 hex digits
of the sha256 of its file's bytes, so ids do not depend on names or listing order, and two
copies of one file become one image (the second is ledgered as ``duplicate_image``). Files
whose pixels LLaVA's plain ``convert("RGB")`` would get wrong (alpha, transparency, 16-bit,
CMYK, ...) are stored converted, as PNG; the rest are hard-linked (``link: hardlink``, copied
when the link fails) or copied. So the cache holds a snapshot that later stages, the export
and downstream training all read the same way. ``sources.jsonl`` maps each id back to its
source path (and the list's own id, if any).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from genixer.core.build import build
from genixer.core.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    file_sha256,
    needs_conversion,
    open_image,
    safe_join,
    to_rgb,
)
from genixer.core.ledger import SkipLedger
from genixer.core.record import write_jsonl
from genixer.sources.base import store_file
from genixer.world.base import WorldImage, write_index

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
SOURCES = "sources.jsonl"
_FORMAT_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "TIFF": ".tif"}


@dataclass(frozen=True)
class Source:
    rel: str  # relative to the source root (as listed; not yet checked)
    source_id: str | None = None  # the list's own id for it, if any


def _list_file(images: Path) -> bool:
    return images.is_file() and images.suffix.lower() in (".jsonl", ".json")


def _entry_source(entry: object) -> Source | None:
    if not isinstance(entry, dict):
        return None
    rel = entry.get("image", entry.get("img_path"))
    if not isinstance(rel, str) or not rel.strip():
        return None
    sid = entry.get("id")
    return Source(rel.strip(), None if sid is None else str(sid))


def read_image_list(path: Path, ledger: SkipLedger) -> list[Source]:
    """Sources from a ``.jsonl`` (one object a line) or ``.json`` (a list) image list;
    malformed lines/entries are ledgered, never fatal."""
    out: list[Source] = []
    if path.suffix.lower() == ".json":
        try:
            entries = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a JSON list of images: {err}") from None
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a JSON list of {{'image': ...}} objects")
        for i, entry in enumerate(entries):
            src = _entry_source(entry)
            if src is None:
                ledger.add("malformed_entry", path=str(path), line=i, detail=repr(entry)[:200])
            else:
                out.append(src)
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                src = _entry_source(json.loads(line))
            except json.JSONDecodeError as err:
                ledger.add("malformed_line", path=str(path), line=i, detail=str(err))
                continue
            if src is None:
                ledger.add(
                    "malformed_line", path=str(path), line=i, detail="no 'image' path string"
                )
            else:
                out.append(src)
    return out


def walk_folder(root: Path, extensions: tuple[str, ...], ledger: SkipLedger) -> list[Source]:
    """Image files under ``root`` in sorted order. Other files are ledgered
    (``not_an_image_extension``); symlinked folders are not walked and are ledgered too."""
    out: list[Source] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames.sort()
        for d in list(dirnames):
            if (here / d).is_symlink():
                rel = str((here / d).relative_to(root))
                try:
                    safe_join(root, rel)
                    ledger.add("symlinked_folder", path=rel, detail="not followed")
                except ImageError as err:
                    ledger.add(err.reason, path=rel, detail=err.detail)
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
        for name in sorted(filenames):
            rel = str((here / name).relative_to(root))
            if Path(name).suffix.lower() in extensions:
                out.append(Source(rel))
            else:
                ledger.add("not_an_image_extension", path=rel)
    return out


def inspect(root: str, rel: str, max_pixels: int | None) -> dict:
    """Check one candidate: ``{"ok": True, sha256, mode, size, convert, format}`` or
    ``{"ok": False, reason, detail}``. Top level so a process pool can run it."""
    try:
        path = safe_join(root, rel)
        im = open_image(path, max_pixels)
        convert = needs_conversion(im)
        to_rgb(im)  # the conversion must work now, not in the middle of generation
        return {
            "ok": True,
            "path": str(path),
            "sha256": file_sha256(path),
            "mode": im.mode,
            "size": list(im.size),
            "convert": convert,
            "format": getattr(im, "format", None) or "",
        }
    except ImageError as err:
        return {"ok": False, "reason": err.reason, "detail": err.detail}
    except Exception as err:  # a decoder bug must cost one image, not the job
        return {"ok": False, "reason": "corrupt", "detail": f"{type(err).__name__}: {err}"}


class FolderWorld:
    """The pool from real images; the other splits from ``base`` (default: the shapes world).

    Args:
        images: a folder, or a ``.jsonl`` / ``.json`` image list.
        base: the labeled world (a built object or its ``_target_`` config); its pool must
            be empty (``splits.pool: 0``): this world's pool is the folder.
        image_root: the folder list paths are relative to (default: the list's folder).
        extensions: file suffixes a folder walk takes as images.
        max_pixels: the decompression-bomb guard (width x height); null = Pillow's own only.
        link: ``hardlink`` (copy when linking fails) or ``copy``.
        workers: processes checking images in parallel (0 = in this process).
        image_size: the side the tiny models see (``${world.image_size}`` in their configs);
            folder images keep their own size on disk.
    """

    def __init__(
        self,
        images: str,
        base,
        *,
        image_root: str | None = None,
        extensions: list[str] | tuple[str, ...] = IMAGE_EXTENSIONS,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        link: str = "hardlink",
        workers: int = 0,
        image_size: int | None = None,
    ) -> None:
        if not images:
            raise ValueError("world=folder needs world.images (a folder or a .jsonl list)")
        self.images = Path(images).expanduser()
        if not self.images.exists():
            raise ValueError(f"world.images does not exist: {self.images}")
        if not (self.images.is_dir() or _list_file(self.images)):
            raise ValueError(f"world.images must be a folder, .jsonl or .json: {self.images}")
        if image_root is not None:
            self.root = Path(image_root).expanduser()
        else:
            self.root = self.images if self.images.is_dir() else self.images.parent
        if link not in ("hardlink", "copy"):
            raise ValueError(f"world.link must be 'hardlink' or 'copy', got {link!r}")
        self.base = build(base) if isinstance(base, dict) else base
        if getattr(self.base, "split_sizes", {}).get("pool", 0):
            raise ValueError("world.base.splits.pool must be 0: the folder is the pool")
        self.extensions = tuple(e.lower() for e in extensions)
        self.max_pixels = None if max_pixels is None else int(max_pixels)
        self.link = link
        self.workers = int(workers)
        self.image_size = image_size
        self.report: dict = {}

    # ------------------------------------------------------------------ listing
    def sources(self, ledger: SkipLedger) -> list[Source]:
        if self.images.is_dir():
            return walk_folder(self.images, self.extensions, ledger)
        return read_image_list(self.images, ledger)

    def fingerprint(self) -> str:
        """A hash of what the pool is made of (names, sizes, mtimes; a list's bytes), cheap
        enough to take on every run: the world stage's cache key includes it, so editing the
        folder re-runs the stage while an untouched folder re-uses it."""
        h = hashlib.sha256()
        if _list_file(self.images):
            h.update(self.images.read_bytes())
        for src in self.sources(SkipLedger("fingerprint")):
            try:
                st = os.stat(self.root / src.rel)
                h.update(f"{src.rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{src.rel}\0missing\n".encode())
        return h.hexdigest()[:16]

    def _inspect_all(self, sources: list[Source]) -> list[dict]:
        args = [(str(self.root), s.rel, self.max_pixels) for s in sources]
        if self.workers > 0 and len(args) > 1:
            # spawn, not fork: the parent may hold torch's threads
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(self.workers, mp_context=ctx) as pool:
                return list(pool.map(inspect, *zip(*args, strict=True), chunksize=64))
        return [inspect(*a) for a in args]

    def _store_pool(
        self, root: Path, sources: list[Source], ledger: SkipLedger
    ) -> tuple[list[WorldImage], list[dict], Counter, Counter]:
        """Check every listed image and store the good ones under ``images/pool``.

        Returns the pool images and their ``sources.jsonl`` rows in listing order, how many
        were stored each way (linked / copied / converted) and how many were converted from
        each mode. An image that fails its checks, or repeats an earlier one's bytes, goes to
        the ledger instead: the first copy in listing order is the one kept.
        """
        first_of: dict[str, str] = {}
        pool: list[WorldImage] = []
        rows: list[dict] = []
        stored: Counter = Counter()
        converted: Counter = Counter()
        for src, res in zip(sources, self._inspect_all(sources), strict=True):
            if not res["ok"]:
                ledger.add(res["reason"], path=src.rel, detail=res["detail"])
                continue
            digest = res["sha256"]
            image_id = digest[:16]
            if image_id in first_of:
                ledger.add(
                    "duplicate_image", path=src.rel, id=image_id, duplicate_of=first_of[image_id]
                )
                continue
            first_of[image_id] = src.rel
            rel, how = self._store_image(root, image_id, res)
            if how == "converted":
                converted[res["mode"]] += 1
            stored[how] += 1
            pool.append(WorldImage(image_id, "pool", rel))
            rows.append(
                {
                    "id": image_id,
                    "source": src.rel,
                    "source_id": src.source_id,
                    "sha256": digest,
                    "mode": res["mode"],
                    "size": res["size"],
                    "stored": how,
                }
            )
        return pool, rows, stored, converted

    def _store_image(self, root: Path, image_id: str, res: dict) -> tuple[str, str]:
        """Put one checked image in the pool; returns its path under ``root`` and how it got
        there. An image plain ``convert("RGB")`` would read wrong is written converted, as
        PNG; any other keeps its bytes (and its format's extension) via a link or a copy."""
        if res["convert"]:
            rel = f"images/pool/{image_id}.png"
            tmp = root / (rel + ".tmp")
            to_rgb(open_image(res["path"], self.max_pixels)).save(tmp, format="PNG")
            os.replace(tmp, root / rel)
            return rel, "converted"
        ext = _FORMAT_EXT.get(
            res["format"], "." + res["format"].lower() if res["format"] else ".png"
        )
        rel = f"images/pool/{image_id}{ext}"
        return rel, store_file(Path(res["path"]), root / rel, self.link)

    # ------------------------------------------------------------------ the stage
    def materialize(self, root: str | Path) -> dict[str, list[WorldImage]]:
        root = Path(root)
        splits = self.base.materialize(root)
        ledger = SkipLedger("world")
        sources = self.sources(ledger)
        pool_dir = root / "images" / "pool"
        pool_dir.mkdir(parents=True, exist_ok=True)
        pool, rows, stored, converted = self._store_pool(root, sources, ledger)
        pool.sort(key=lambda i: i.id)
        splits["pool"] = pool
        write_jsonl(root / SOURCES, sorted(rows, key=lambda r: r["id"]))
        ledger_path = ledger.write(root)
        write_index(root, splits)
        self.report = {
            "pool": {
                "listed": len(sources),  # candidates that reached the image checks
                "images": len(pool),
                "stored": dict(stored),
                "converted": dict(sorted(converted.items())),
                "skipped": dict(sorted(ledger.counts.items())),
            },
            "ledger": str(ledger_path),
        }
        log.info(
            "world=folder: %d pool images from %s, %d skipped %s",
            len(pool),
            self.images,
            len(ledger),
            dict(ledger.counts),
        )
        if not pool:
            raise ValueError(
                f"world=folder: no usable image in {self.images}; reasons in {ledger_path}"
            )
        return splits
