"""The record viewer: a static folder (``viewer/index.html``, its data as ``.js`` files and
the images it shows) written into a run folder, readable from ``file://`` and from a plain
HTTP server (``python -m genixer.view RUN [--serve]``).

The page reads no JSON with ``fetch`` (browsers refuse it from ``file://``): the data are
scripts that assign to ``window.GENIXER``. ``data/index.js`` holds the columns every filter
needs (id, task, kinds, score, verdict, status) for every entry, loaded up front;
``data/page-NNNNN.js`` hold the heavy fields (turns, options, boxes, raw text) of
:data:`PAGE_SIZE` entries each, loaded when a record on them is shown. Record text is set as
text by the page, never as HTML. Images are linked (or copied) into ``viewer/images/`` from
the world root, each path checked to stay inside the root (:func:`safe_join`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from genixer.core.images import ImageError, safe_join
from genixer.runs.viewer_data import RunFiles, ViewerInputError, find_files, gather

log = logging.getLogger(__name__)

VIEWER = "viewer"
PAGE_SIZE = 500
STATUSES = ("kept", "dropped", "duplicate", "generated", "parse_failure", "skipped")
_ASSET = Path(__file__).with_name("viewer.html")

__all__ = ["VIEWER", "ViewerInputError", "build_viewer", "serve"]


def _place_image(src_root: Path, rel: str, images: Path) -> str:
    """``rel`` under ``images/`` (a hard link, or a copy across file systems); ImageError
    when it escapes the world root or is not a file there."""
    src = safe_join(src_root, rel)
    if not src.is_file():
        raise ImageError("missing", str(src))
    dst = safe_join(images, rel)
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return "images/" + dst.relative_to(images.resolve()).as_posix()


def place_images(entries: list[dict], world_root: Path, out: Path) -> int:
    """Point each entry at its image inside the viewer; an image that escapes the root or is
    missing is left out and said (``image_error``). Returns the images placed."""
    images, placed = out / "images", {}
    images.mkdir(parents=True, exist_ok=True)
    for e in entries:
        rel = e.get("image")
        if not rel:
            e["image"] = None
            continue
        if rel not in placed:
            try:
                placed[rel] = _place_image(world_root, rel, images)
            except ImageError as err:
                placed[rel] = err
        found = placed[rel]
        e["image"] = found if isinstance(found, str) else None
        if not isinstance(found, str):
            e["image_error"] = str(found)
    return sum(isinstance(v, str) for v in placed.values())


def _code(values: list, table: list) -> list[int]:
    """Values as indices into ``table`` (extended in first-seen order)."""
    where = {v: i for i, v in enumerate(table)}
    out = []
    for v in values:
        if v not in where:
            where[v] = len(table)
            table.append(v)
        out.append(where[v])
    return out


def index_of(entries: list[dict], meta: dict) -> dict:
    """The columns the page filters on, one value per entry, codes into small tables."""
    tasks: list[str] = []
    kinds: list[str] = []
    statuses = list(STATUSES)
    return {
        "meta": meta | {"page_size": PAGE_SIZE, "total": len(entries)},
        "id": [e["id"] for e in entries],
        "task": _code([e["task"] for e in entries], tasks),
        "kinds": [_code(e["kinds"], kinds) for e in entries],
        "score": [e["score"] for e in entries],
        "verdict": [None if e["oracle"] is None else int(e["oracle"]) for e in entries],
        "status": _code([e["status"] for e in entries], statuses),
        "tables": {"task": tasks, "kind": kinds, "status": statuses},
    }


def _script(path: Path, target: str, value) -> None:
    """``target = <value as JSON>;``: ASCII only (no charset question, no line separators),
    and no ``<`` (a ``</script>`` in a record can never end a script, wherever it is put)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    path.write_text(f"{target} = {text};\n")


def _meta(files: RunFiles) -> dict:
    s = files.summary
    gen, select = s.get("generation", {}), s.get("select", {})
    return {
        "run": str(files.run_dir),
        "filter": s.get("filter", {}).get("name"),
        "generated": gen.get("num_records"),
        "parse_failures": gen.get("parse_failures"),
        "kept": select.get("num_kept"),
        "oracle_accuracy": gen.get("oracle_accuracy"),
        "kept_oracle_accuracy": select.get("oracle_accuracy"),
        "auroc": s.get("filter", {}).get("auroc"),
        "missing": files.missing,
    }


def write_viewer(files: RunFiles, out: Path) -> Path:
    """Write the viewer of ``files`` into the empty folder ``out``; its ``index.html``."""
    entries = gather(files)
    place_images(entries, files.world_root, out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    _script(data / "index.js", "window.GENIXER.index", index_of(entries, _meta(files)))
    for k in range(0, len(entries), PAGE_SIZE):
        page = k // PAGE_SIZE
        _script(
            data / f"page-{page:05d}.js",
            f"window.GENIXER.pages[{page}]",
            entries[k : k + PAGE_SIZE],
        )
    shutil.copyfile(_ASSET, out / "index.html")
    return out / "index.html"


def build_viewer(run: str | Path) -> Path:
    """Write ``<run>/viewer/`` for a run folder (or its ``summary.json``); its index.html.
    Built next to the old viewer and swapped in, so a page open on it never sees half."""
    files = find_files(run)
    final = files.run_dir / VIEWER
    tmp = files.run_dir / f".{VIEWER}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_viewer(files, tmp)
        old = files.run_dir / f".{VIEWER}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if files.missing:
        log.warning("viewer: files named by the summary are missing: %s", files.missing)
    return final / "index.html"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("viewer server: " + format, *args)


def serve(folder: Path, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` on 127.0.0.1 (``port`` 0: a free one); not started."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)
