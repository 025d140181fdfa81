"""Sample grids: small images with their boxes, titles and wrapped captions in one PNG.

Used to look at what a generator produced (question, answer, filter score, oracle verdict)
next to the image it was produced for. Pillow only; the default font.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

BOX_COLOR = (255, 0, 255)  # magenta: rare in the toy images, easy to spot
OK_COLOR = (0, 140, 0)
BAD_COLOR = (200, 0, 0)
TEXT_COLOR = (20, 20, 20)
NEUTRAL_COLOR = (90, 90, 90)
BACKGROUND = (255, 255, 255)
PAD = 6  # pixels around and between cells
MIN_CELL_WIDTH = 140  # so that captions under tiny images stay readable

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont | ImageFont.TransposedFont


def _text_width(font: Font, text: str) -> float:
    return font.getlength(text)


def _line_height(font: Font) -> int:
    left, top, right, bottom = font.getbbox("Ag|y")
    return int(bottom - min(top, 0)) + 2


def wrap_text(text: str, font: Font, max_width: float) -> list[str]:
    """Greedy word wrap of ``text`` to ``max_width`` pixels; over-long words are cut."""
    out: list[str] = []
    for paragraph in str(text).splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if _text_width(font, candidate) <= max_width:
                line = candidate
                continue
            if line:
                out.append(line)
            # The word alone may still be too wide: cut it into pieces that fit.
            while _text_width(font, word) > max_width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and _text_width(font, word[:cut]) > max_width:
                    cut -= 1
                out.append(word[:cut])
                word = word[cut:]
            line = word
        out.append(line)
    return out


def _caption_color(ok: bool | None) -> tuple[int, int, int]:
    if ok is None:
        return NEUTRAL_COLOR
    return OK_COLOR if ok else BAD_COLOR


def _render_image(item: dict[str, Any], scale: int) -> Image.Image:
    """The item's image in RGB, upscaled (nearest) by ``scale``, with its boxes drawn."""
    img = item["image"].convert("RGB")
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    boxes: Sequence[Sequence[float]] = item.get("boxes") or ()
    if boxes:
        draw = ImageDraw.Draw(img)
        w, h = img.size
        width = max(1, scale // 2)
        for box in boxes:
            x0, y0, x1, y1 = (float(v) for v in box)
            rect = (
                min(max(round(min(x0, x1) * w), 0), w - 1),
                min(max(round(min(y0, y1) * h), 0), h - 1),
                min(max(round(max(x0, x1) * w) - 1, 0), w - 1),
                min(max(round(max(y0, y1) * h) - 1, 0), h - 1),
            )
            draw.rectangle(rect, outline=BOX_COLOR, width=width)
    return img


def _caption_lines(
    item: dict[str, Any], font: Font, width: int
) -> list[tuple[str, tuple[int, int, int]]]:
    """Wrapped (text, colour) lines: the title in the verdict colour, then the lines."""
    colour = _caption_color(item.get("ok"))
    out = [(t, colour) for t in wrap_text(item.get("title", ""), font, width)]
    text_colour = TEXT_COLOR if item.get("ok") is None else colour
    for line in item.get("lines") or ():
        out.extend((t, text_colour) for t in wrap_text(line, font, width))
    return out


def draw_grid(
    items: list[dict[str, Any]], path: str | os.PathLike[str], columns: int = 4, scale: int = 4
) -> str:
    """Draw ``items`` as a grid of captioned images and save it as a PNG at ``path``.

    Each item is a dict with ``image`` (a PIL image), ``title`` (str), ``lines`` (list of str),
    optional ``boxes`` (``(x0, y0, x1, y1)`` in [0, 1] of the image, drawn in
    :data:`BOX_COLOR`) and optional ``ok`` (True: green caption and frame, False: red, None or
    missing: neutral). Images are upscaled by ``scale`` with nearest-neighbour resampling;
    captions are wrapped to the cell width. The file is written to a temporary file in the same
    folder and moved into place, so readers never see half a PNG. Returns the path as a str.
    """
    if not items:
        raise ValueError("draw_grid needs at least one item")
    if columns < 1 or scale < 1:
        raise ValueError("columns and scale must be >= 1")
    font = ImageFont.load_default()
    line_h = _line_height(font)

    images = [_render_image(item, scale) for item in items]
    cell_w = max(MIN_CELL_WIDTH, *(im.width for im in images))
    text_w = cell_w - 4
    captions = [_caption_lines(item, font, text_w) for item in items]
    cell_h = [im.height + 4 + len(cap) * line_h for im, cap in zip(images, captions, strict=True)]

    cols = min(columns, len(items))
    n_rows = (len(items) + cols - 1) // cols
    row_h = [max(cell_h[r * cols : (r + 1) * cols]) for r in range(n_rows)]
    canvas_w = PAD + cols * (cell_w + PAD)
    canvas_h = PAD + sum(h + PAD for h in row_h)
    canvas = Image.new("RGB", (canvas_w, canvas_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    y = PAD
    for r in range(n_rows):
        for c in range(cols):
            i = r * cols + c
            if i >= len(items):
                break
            x = PAD + c * (cell_w + PAD)
            ok = items[i].get("ok")
            if ok is not None:  # a thin frame in the verdict colour around the cell
                frame = (x - 2, y - 2, x + cell_w + 1, y + row_h[r] + 1)
                draw.rectangle(frame, outline=_caption_color(ok), width=1)
            img = images[i]
            canvas.paste(img, (x + (cell_w - img.width) // 2, y))
            ty = y + img.height + 4
            for text, colour in captions[i]:
                draw.text((x + 2, ty), text, fill=colour, font=font)
                ty += line_h
        y += row_h[r] + PAD

    return _save_atomic(canvas, Path(path))


def _save_atomic(image: Image.Image, path: Path) -> str:
    """Save ``image`` as PNG via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return str(path)
