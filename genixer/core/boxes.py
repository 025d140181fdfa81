"""Boxes and points: the project's only place that formats, parses or converts them.

Conventions (GENIXER.md): a box is ``(x0, y0, x1, y1)`` normalized to [0, 1] by the image's
width and height, written with 3 decimals and no spaces: ``[0.120,0.340,0.560,0.910]``.
Several boxes for one phrase are joined by ``;`` inside one bracket; a point is ``[x,y]``.

Frames: records hold boxes in the ORIGINAL image frame. Models that pad images to a square
(LLaVA-1.5 "pad" mode) see the PADDED frame; :func:`to_padded` / :func:`to_original` convert.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

Box = tuple[float, float, float, float]
Point = tuple[float, float]

DECIMALS = 3
_NUM = r"-?\d+(?:\.\d+)?"
# One bracket group: numbers separated by ',' with groups separated by ';'.
BRACKET_RE = re.compile(r"\[([^\[\]]*)\]")


class Frame(StrEnum):
    ORIGINAL = "original"
    PADDED = "padded"


class BoxParseError(ValueError):
    """A bracket that does not hold a valid box or point; the message says why."""


def clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def normalize(box_px: Sequence[float], width: int, height: int) -> Box:
    """Pixel box -> normalized box, clipped to the image."""
    x0, y0, x1, y1 = box_px
    return (clip01(x0 / width), clip01(y0 / height), clip01(x1 / width), clip01(y1 / height))


def denormalize(box: Sequence[float], width: int, height: int) -> Box:
    """Normalized box -> pixel box (floats)."""
    x0, y0, x1, y1 = box
    return (x0 * width, y0 * height, x1 * width, y1 * height)


def _fmt(v: float) -> str:
    return f"{clip01(v):.{DECIMALS}f}"


def quantize(values: Sequence[float]) -> tuple[float, ...]:
    """The values a box or point has once written as text (clipped, ``DECIMALS`` places)."""
    return tuple(float(_fmt(v)) for v in values)


def format_box(box: Sequence[float]) -> str:
    if len(box) != 4:
        raise ValueError(f"a box has 4 numbers, got {len(box)}")
    return "[" + ",".join(_fmt(v) for v in box) + "]"


def format_boxes(boxes: Sequence[Sequence[float]]) -> str:
    """Several boxes of one phrase: ``[a,b,c,d;e,f,g,h]``."""
    if not boxes:
        raise ValueError("format_boxes needs at least one box")
    return "[" + ";".join(",".join(_fmt(v) for v in b) for b in boxes) + "]"


def format_point(point: Sequence[float]) -> str:
    if len(point) != 2:
        raise ValueError(f"a point has 2 numbers, got {len(point)}")
    return "[" + ",".join(_fmt(v) for v in point) + "]"


def _parse_group(group: str, strict: bool) -> tuple[float, ...]:
    parts = group.split(",")
    if any(not re.fullmatch(_NUM, p.strip()) for p in parts):
        raise BoxParseError(f"not a list of numbers: {group!r}")
    vals = tuple(float(p) for p in parts)
    if len(vals) not in (2, 4):
        raise BoxParseError(f"expected 2 or 4 numbers, got {len(vals)}: {group!r}")
    if strict and any(v < 0 or v > 1 for v in vals):
        raise BoxParseError(f"values outside [0,1]: {group!r}")
    vals = tuple(clip01(v) for v in vals)
    if len(vals) == 4 and (vals[2] < vals[0] or vals[3] < vals[1]):
        raise BoxParseError(f"x1<x0 or y1<y0: {group!r}")
    return vals


def parse_bracket(text: str, strict: bool = True) -> list[tuple[float, ...]]:
    """Parse the inside or whole of one bracket: ``[a,b,c,d;e,f,g,h]`` -> list of tuples.

    ``strict`` rejects values outside [0, 1]; otherwise they are clipped.
    """
    inner = text.strip()
    if inner.startswith("[") or inner.endswith("]"):
        if not (inner.startswith("[") and inner.endswith("]")):
            raise BoxParseError(f"unbalanced bracket: {text!r}")
        inner = inner[1:-1]
    if not inner.strip():
        raise BoxParseError("empty bracket")
    return [_parse_group(g, strict) for g in inner.split(";")]


def parse_box(text: str, strict: bool = True) -> Box:
    """Exactly one box."""
    groups = parse_bracket(text, strict)
    if len(groups) != 1 or len(groups[0]) != 4:
        raise BoxParseError(f"expected one box of 4 numbers: {text!r}")
    return groups[0]  # type: ignore[return-value]


def parse_point(text: str, strict: bool = True) -> Point:
    groups = parse_bracket(text, strict)
    if len(groups) != 1 or len(groups[0]) != 2:
        raise BoxParseError(f"expected one point of 2 numbers: {text!r}")
    return groups[0]  # type: ignore[return-value]


def find_brackets(text: str) -> list[tuple[int, int, str]]:
    """All ``[...]`` groups in a text as ``(start, end, inner)``; unbalanced ones raise."""
    if text.count("[") != text.count("]"):
        raise BoxParseError("unbalanced brackets")
    return [(m.start(), m.end(), m.group(1)) for m in BRACKET_RE.finditer(text)]


def area(box: Sequence[float]) -> float:
    x0, y0, x1, y1 = box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix0, iy0 = max(a[0], b[0]), max(a[1], b[1])
    ix1, iy1 = min(a[2], b[2]), min(a[3], b[3])
    inter = area((ix0, iy0, ix1, iy1)) if ix1 > ix0 and iy1 > iy0 else 0.0
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def contains(box: Sequence[float], point: Sequence[float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _pad_geometry(width: int, height: int) -> tuple[float, float, float]:
    """Side of the padded square and the offsets of the original inside it (centered)."""
    side = max(width, height)
    return side, (side - width) / 2, (side - height) / 2


def to_padded(box: Sequence[float], width: int, height: int) -> Box:
    """Original-frame normalized box -> padded-square-frame normalized box."""
    side, ox, oy = _pad_geometry(width, height)
    x0, y0, x1, y1 = denormalize(box, width, height)
    return ((x0 + ox) / side, (y0 + oy) / side, (x1 + ox) / side, (y1 + oy) / side)


def to_original(box: Sequence[float], width: int, height: int) -> Box:
    """Padded-square-frame normalized box -> original-frame normalized box (clipped)."""
    side, ox, oy = _pad_geometry(width, height)
    x0, y0, x1, y1 = (v * side for v in box)
    return normalize((x0 - ox, y0 - oy, x1 - ox, y1 - oy), width, height)


def convert(box: Sequence[float], src: Frame, dst: Frame, width: int, height: int) -> Box:
    if src == dst:
        return tuple(box)  # type: ignore[return-value]
    return to_padded(box, width, height) if dst == Frame.PADDED else to_original(box, width, height)


def xywh_to_xyxy(box: Sequence[float]) -> Box:
    """COCO / Visual Genome ``[x, y, width, height]`` pixels -> ``(x0, y0, x1, y1)`` pixels."""
    x, y, w, h = box
    return (x, y, x + w, y + h)


def overhang(box_px: Sequence[float], width: float, height: float) -> float:
    """How far (pixels) a pixel box reaches outside its image; 0.0 when it lies inside."""
    x0, y0, x1, y1 = box_px
    return max(0.0, -x0, -y0, x1 - width, y1 - height)
