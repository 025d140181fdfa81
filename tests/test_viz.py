"""Tests of genixer.runs.viz.draw_grid."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from genixer.runs.viz import BOX_COLOR, MIN_CELL_WIDTH, PAD, draw_grid, wrap_text

BG = (30, 120, 200)


def _image(i: int, size: int = 32) -> Image.Image:
    img = Image.new("RGB", (size, size), BG)
    ImageDraw.Draw(img).ellipse((2 + i, 2, 12 + i, 12), fill=(250, 200, 0))
    return img


def _items() -> list[dict]:
    items = []
    for i in range(5):
        items.append(
            {
                "image": _image(i),
                "title": f"sample {i}",
                "lines": [
                    "Q: " + "is there a yellow circle in the top left corner of the image? " * 2,
                    "A: yes",
                    f"score {0.1 * i:.2f}",
                    f"oracle: {i % 2 == 0}",
                ],
                "ok": [True, False, None, True, False][i],
            }
        )
    items[0]["boxes"] = [(0.25, 0.25, 0.75, 0.75)]
    items[3]["boxes"] = [(0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.9, 0.9)]
    return items


def test_draw_grid_png(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "grid.png"
    got = draw_grid(_items(), str(out), columns=4, scale=4)
    assert got == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]  # no temp file left behind

    with Image.open(out) as im:
        im.load()
        assert im.format == "PNG"
        canvas = im.convert("RGB")
    cell_w = max(MIN_CELL_WIDTH, 32 * 4)
    assert canvas.width == PAD + 4 * (cell_w + PAD)  # 4 columns, 5 items -> 2 rows
    assert 2 * 128 < canvas.height < 2 * 128 + 2 * 200  # images plus a few caption lines

    # Item 0 sits in the first cell; its upscaled image is centred horizontally at the top.
    x0, y0 = PAD + (cell_w - 128) // 2, PAD
    # The box (0.25..0.75 of a 128 px image) spans pixels 32..95: its left edge is magenta.
    assert canvas.getpixel((x0 + 32, y0 + 64)) == BOX_COLOR
    assert canvas.getpixel((x0 + 95, y0 + 40)) == BOX_COLOR
    # Inside and outside the box the image keeps its own colour (nearest upscaling).
    assert canvas.getpixel((x0 + 64, y0 + 64)) == BG
    assert canvas.getpixel((x0 + 120, y0 + 120)) == BG


def test_draw_grid_overwrites_and_rejects_empty(tmp_path: Path) -> None:
    out = tmp_path / "g.png"
    draw_grid(_items()[:2], out, columns=1, scale=1)
    with Image.open(out) as im:
        first = im.size
    draw_grid(_items(), out, columns=5, scale=2)
    with Image.open(out) as im:
        assert im.size != first
        assert im.width == PAD + 5 * (MIN_CELL_WIDTH + PAD)
    with pytest.raises(ValueError):
        draw_grid([], out)


def test_wrap_text_fits() -> None:
    font = ImageFont.load_default()
    text = "a " * 50 + "x" * 80
    lines = wrap_text(text, font, 100)
    assert len(lines) > 2
    assert all(font.getlength(line) <= 100 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
