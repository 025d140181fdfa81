"""Opening images from the outside world: every file either becomes an RGB image or raises
:class:`ImageError` with a short machine-readable reason, for a skip ledger.

What is handled (converted to RGB): grayscale (``1``, ``L``), palette (``P``, with or without
transparency), alpha (``RGBA``, ``LA``, ``PA``: composited over white, so transparent pixels
do not turn into whatever colour the file stored under them), ``CMYK``, ``YCbCr``, 16-bit and
32-bit integer and float grayscale (``I;16*``, ``I``, ``F``: scaled to 8 bits, not clipped).

What is refused, with its reason: ``missing``, ``not_a_file``, ``empty_file``, ``unreadable``
(permissions, I/O), ``not_an_image`` (Pillow does not recognise it), ``truncated``,
``corrupt`` (decoding failed), ``too_large`` (more pixels than ``max_pixels``: the
decompression-bomb guard; Pillow's own refusal above twice ``PIL.Image.MAX_IMAGE_PIXELS`` is
reported the same way), ``unsupported_mode``, ``escapes_root`` (a path out of its root).

EXIF orientation is deliberately not applied: LLaVA's and Shikra's loaders do not apply it
either, so boxes stay in the frame every consumer of the exported data sees.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow's default guard (about 89.5M pixels, a 9459 x 9459 image).
DEFAULT_MAX_PIXELS = 89_478_485
# Modes LLaVA's own ``Image.open(p).convert("RGB")`` turns into the same pixels we use:
# files in these modes can be used as they are; others are stored converted.
PLAIN_MODES = frozenset({"RGB", "L", "1"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WHITE = (255, 255, 255)


class ImageError(ValueError):
    """An image that cannot be used, with a short ``reason`` for the skip ledger."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def safe_join(root: str | Path, rel: str | Path) -> Path:
    """``root/rel``, refusing paths that escape root (``..``, absolute, symlinks out)."""
    root_p = Path(root).resolve()
    p = (root_p / rel).resolve()
    if not p.is_relative_to(root_p):
        raise ImageError("escapes_root", f"image path escapes its root: {str(rel)!r}")
    return p


def check_file(path: str | Path) -> Path:
    """The path, if it is a non-empty regular file (symlinks followed); else ImageError.
    Checked before opening: opening a FIFO would block, a directory would fail obscurely."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageError("missing", str(p)) from None
    except OSError as err:
        raise ImageError("unreadable", f"{p}: {err}") from None
    if not p.is_file():
        raise ImageError("not_a_file", str(p))
    if st.st_size == 0:
        raise ImageError("empty_file", str(p))
    return p


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (the content identity of an image)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except FileNotFoundError:
        raise ImageError("missing", str(path)) from None
    except OSError as err:
        raise ImageError("unreadable", f"{path}: {err}") from None
    return h.hexdigest()


def _scale_to_8bit(im: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float grayscale image as ``L``, scaled rather than clipped."""
    arr = np.asarray(im)
    kind = arr.dtype.kind
    if kind in "ui" and im.mode.startswith("I;16"):
        out = arr.astype(np.float64) / 257.0  # 65535 -> 255
    elif kind in "ui" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        # mode "I" holding 16-bit data (how some decoders hand 16-bit PNG/TIFF over)
        out = arr.astype(np.float64) / (257.0 if arr.max() > 255 else 1.0)
    else:  # float or wide-range ints
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
        if kind == "f" and lo >= 0.0 and hi <= 1.0:
            out = arr * 255.0  # float intensities in [0, 1]
        else:  # stretch the image's own range
            out = (arr - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))  # 2-D uint8: L


def to_rgb(im: Image.Image) -> Image.Image:
    """Any decoded Pillow image as ``RGB`` (see the module docstring for the rules)."""
    mode = im.mode
    try:
        if mode == "RGB":
            return im.copy()
        if mode == "P":
            if "transparency" in im.info:
                im, mode = im.convert("RGBA"), "RGBA"
            else:
                return im.convert("RGB")
        if mode in _ALPHA_MODES:
            rgba = im.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        if mode.startswith("I") or mode == "F":
            return _scale_to_8bit(im).convert("RGB")
        return im.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV, ...
    except (ValueError, OSError) as err:
        raise ImageError("unsupported_mode", f"{mode}: {err}") from None


def needs_conversion(im: Image.Image) -> bool:
    """Whether a plain ``convert("RGB")`` (what LLaVA's loader does) would differ from
    :func:`to_rgb`: such files are stored converted, so every consumer sees one picture."""
    if im.mode == "P":
        return "transparency" in im.info
    return im.mode not in PLAIN_MODES


def open_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image file (not yet converted); ImageError when unusable."""
    p = check_file(path)
    try:
        with warnings.catch_warnings():
            # our own guard below decides; Pillow's warning would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError as err:
        raise ImageError("too_large", str(err)) from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", str(p)) from None
    except PermissionError as err:
        raise ImageError("unreadable", f"{p}: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
        raise ImageError(reason, f"{p}: {err}") from None
    with im:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ImageError("corrupt", f"{p}: size {w}x{h}")
        if max_pixels is not None and w * h > max_pixels:
            raise ImageError("too_large", f"{p}: {w}x{h} = {w * h} pixels > {max_pixels}")
        try:
            im.load()
        except OSError as err:
            reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
            raise ImageError(reason, f"{p}: {err}") from None
        except (SyntaxError, ValueError, EOFError, IndexError, struct.error) as err:
            raise ImageError("corrupt", f"{p}: {err}") from None
        return im.copy()  # decoded pixels, detached from the file the ``with`` closes


def open_rgb(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """An image file as a decoded RGB image, or ImageError with its reason."""
    return to_rgb(open_image(path, max_pixels))
