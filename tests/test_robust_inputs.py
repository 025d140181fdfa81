"""Bad and unusual image inputs: each is converted to RGB or skipped with its reason in the
ledger, counted; nothing is lost silently and nothing stops the run."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genixer.core.images import ImageError, open_rgb
from genixer.core.ledger import SkipLedger, merge_ledgers
from genixer.sources.folder import FolderWorld
from genixer.sources.shapes import ShapesWorld
from genixer.world import load_image

BASE = {"collection": 2, "judge": 1, "downstream": 1, "benchmark": 1}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size and holds no pixels: what a decompression bomb's
    header looks like to Image.open."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def build_bad_folder(root: Path, outside: Path) -> tuple[dict[str, str], dict]:
    """Every kind of input issue 6 names, written with Pillow. Returns (path -> the reason
    expected in the ledger, "ok" for files that must load; path -> (size, {(x, y): rgb})
    for the files that must load)."""
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    expect: dict[str, str] = {}
    good_ones: dict[str, tuple[tuple[int, int], dict]] = {}

    def good(name: str, im: Image.Image, checks: dict, **save) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, **save)
        expect[name] = "ok"
        good_ones[name] = (im.size, checks)

    rgb = Image.fromarray(np.random.RandomState(0).randint(0, 255, (20, 30, 3), dtype=np.uint8))
    good("rgb.jpg", rgb, {})
    good("sub/dir/gray.png", Image.new("L", (17, 13), 90), {(0, 0): (90, 90, 90)})
    rgba = Image.new("RGBA", (12, 10), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    good("rgba.png", rgba, {(0, 0): (255, 255, 255), (1, 1): (255, 0, 0)})
    pal = Image.new("P", (10, 8), 0)
    pal.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    pal.putpixel((2, 2), 1)
    good("palette.png", pal, {(0, 0): (0, 0, 255), (2, 2): (255, 0, 0)})
    palt = pal.copy()
    good(
        "palette_transparent.png",
        palt,
        {(0, 0): (255, 255, 255), (2, 2): (255, 0, 0)},
        transparency=0,
    )
    good("gray_alpha.png", Image.new("LA", (9, 9), (40, 0)), {(0, 0): (255, 255, 255)})
    good("cmyk.jpg", Image.new("CMYK", (16, 16), (0, 0, 0, 0)), {(3, 3): (255, 255, 255)})
    deep = Image.fromarray(np.full((9, 11), 65535, dtype=np.uint16))
    deep.putpixel((0, 0), 257 * 100)
    good("deep16.png", deep, {(0, 0): (100, 100, 100), (5, 5): (255, 255, 255)})
    good("bilevel.png", Image.new("1", (8, 5), 1), {(0, 0): (255, 255, 255)})
    good("float.tif", Image.new("F", (6, 6), 0.5), {(0, 0): (128, 128, 128)})

    def bad(name: str, data: bytes, reason: str) -> None:
        (root / name).write_bytes(data)
        expect[name] = reason

    noise = Image.fromarray(np.random.RandomState(1).randint(0, 255, (64, 64, 3), np.uint8))
    for fmt in ("png", "jpg"):  # whole headers, then the pixel data cut off
        noise.save(outside / f"noise.{fmt}")
        data = (outside / f"noise.{fmt}").read_bytes()
        bad(f"truncated.{fmt}", data[: int(len(data) * 0.6)], "truncated")
    bad("corrupt.jpg", b"this is not a jpeg at all" * 10, "not_an_image")
    bad("empty.png", b"", "empty_file")
    bad("bomb.png", _png_header_only(20000, 20000), "too_large")  # Pillow's own refusal
    Image.new("RGB", (120, 100), 7).save(root / "big.png")  # over the test's max_pixels
    expect["big.png"] = "too_large"
    shutil.copyfile(root / "rgb.jpg", root / "z_copy_of_rgb.jpg")
    expect["z_copy_of_rgb.jpg"] = "duplicate_image"
    bad("notes.txt", b"captions live elsewhere", "not_an_image_extension")
    Image.new("RGB", (5, 5), 1).save(outside / "secret.png")
    os.symlink(outside / "secret.png", root / "link_out.png")
    expect["link_out.png"] = "escapes_root"
    os.symlink(outside, root / "linked_dir")
    expect["linked_dir"] = "escapes_root"
    os.symlink(root / "does_not_exist.png", root / "dangling.png")
    expect["dangling.png"] = "missing"
    os.mkfifo(root / "fifo.png")  # opening it would block: must be refused unopened
    expect["fifo.png"] = "not_a_file"
    return expect, good_ones


def ledger_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_folder_of_bad_inputs_is_ledgered_counted_and_the_good_ones_load_as_rgb(tmp_path):
    src, outside, out = tmp_path / "src", tmp_path / "outside", tmp_path / "world"
    expect, good_ones = build_bad_folder(src, outside)
    world = FolderWorld(
        str(src), ShapesWorld(seed=0, splits=BASE), max_pixels=10_000, link="hardlink"
    )
    splits = world.materialize(out)

    rows = ledger_rows(out / "skipped.jsonl")
    got = {r["path"]: r["reason"] for r in rows}
    assert all(r["stage"] == "world" for r in rows)
    bad = {k: v for k, v in expect.items() if v != "ok"}
    assert got == bad
    dup = next(r for r in rows if r["reason"] == "duplicate_image")
    assert dup["duplicate_of"] == "rgb.jpg"
    counts: dict[str, int] = {}
    for reason in bad.values():
        counts[reason] = counts.get(reason, 0) + 1
    assert world.report["pool"]["skipped"] == counts
    assert world.report["pool"]["images"] == len(splits["pool"]) == len(good_ones)

    sources = {r["source"]: r for r in ledger_rows(out / "sources.jsonl")}
    assert set(sources) == set(good_ones)
    for item in splits["pool"]:
        name = next(s for s, r in sources.items() if r["id"] == item.id)
        size, checks = good_ones[name]
        img = load_image(out, item)
        assert img.mode == "RGB" and img.size == size, name
        for xy, rgb in checks.items():
            assert img.getpixel(xy) == rgb, (name, xy)
    # plain files are linked as they are; the ones a plain convert("RGB") gets wrong are
    # stored converted, so LLaVA's own loader sees the pixels the generator saw
    assert sources["rgb.jpg"]["stored"] == "linked"
    assert sources["rgba.png"]["stored"] == "converted"
    assert sources["deep16.png"]["stored"] == "converted"
    conv = next(i for i in splits["pool"] if i.id == sources["rgba.png"]["id"])
    with Image.open(out / conv.path) as raw:
        assert raw.mode == "RGB" and raw.getpixel((0, 0)) == (255, 255, 255)


def test_malformed_and_escaping_lines_of_an_image_list_are_ledgered(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    Image.new("RGB", (7, 5), (1, 2, 3)).save(root / "a.png")
    Image.new("RGB", (6, 6), (4, 5, 6)).save(tmp_path / "outside.png")
    lines = [
        json.dumps({"image": "a.png", "id": "sbu-1"}),
        "{not json",
        json.dumps({"img": "a.png"}),
        json.dumps({"image": 5}),
        "",
        json.dumps(["a.png"]),
        json.dumps({"image": "../outside.png"}),
        json.dumps({"image": str(tmp_path / "outside.png")}),
        json.dumps({"image": "missing.jpg"}),
    ]
    listing = root / "list.jsonl"
    listing.write_text("\n".join(lines) + "\n")
    world = FolderWorld(str(listing), ShapesWorld(seed=0, splits=BASE))
    splits = world.materialize(tmp_path / "w")
    rows = ledger_rows(tmp_path / "w" / "skipped.jsonl")
    assert [(r["reason"], r.get("line")) for r in rows] == [
        ("malformed_line", 2),
        ("malformed_line", 3),
        ("malformed_line", 4),
        ("malformed_line", 6),
        ("escapes_root", None),
        ("escapes_root", None),
        ("missing", None),
    ]
    assert world.report["pool"]["skipped"] == {
        "malformed_line": 4,
        "escapes_root": 2,
        "missing": 1,
    }
    (pool,) = splits["pool"]
    (source,) = ledger_rows(tmp_path / "w" / "sources.jsonl")
    assert source["source_id"] == "sbu-1" and source["id"] == pool.id
    assert load_image(tmp_path / "w", pool).size == (7, 5)


def test_open_rgb_reasons_for_single_files(tmp_path):
    with pytest.raises(ImageError) as err:
        open_rgb(tmp_path / "nope.png")
    assert err.value.reason == "missing"
    with pytest.raises(ImageError) as err:
        open_rgb(tmp_path)
    assert err.value.reason == "not_a_file"
    Image.new("RGB", (50, 50)).save(tmp_path / "x.png")
    with pytest.raises(ImageError) as err:
        open_rgb(tmp_path / "x.png", max_pixels=2499)
    assert err.value.reason == "too_large"
    assert open_rgb(tmp_path / "x.png", max_pixels=2500).size == (50, 50)
    with pytest.raises(ImageError) as err:
        load_image(tmp_path, "../escape.png")
    assert err.value.reason == "escapes_root"


def test_ledgers_of_several_stages_merge_into_one_counted_file(tmp_path):
    a, b = SkipLedger("world"), SkipLedger("dedup")
    a.add("missing", path="x.jpg")
    a.add("corrupt", path="y.jpg", detail="bad huffman")
    b.add("duplicate_same_image", id="r1", duplicate_of="r0")
    a.write(tmp_path / "s1")
    b.write(tmp_path / "s2", "skipped-dedup.jsonl")
    (tmp_path / "s3").mkdir()
    out = merge_ledgers([tmp_path / "s1", tmp_path / "s2", tmp_path / "s3"], tmp_path / "run.jsonl")
    assert out == {
        "counts": {"corrupt": 1, "duplicate_same_image": 1, "missing": 1},
        "by_stage": {"dedup": {"duplicate_same_image": 1}, "world": {"corrupt": 1, "missing": 1}},
        "total": 3,
        "ledger": str(tmp_path / "run.jsonl"),
    }
    assert [r["reason"] for r in ledger_rows(tmp_path / "run.jsonl")] == [
        "missing",
        "corrupt",
        "duplicate_same_image",
    ]


def test_the_run_ledger_goes_to_the_output_folder_or_a_keyed_cache_folder(compose_cfg, tmp_path):
    from genixer.pipeline.cache import StageResult
    from genixer.pipeline.summary import run_ledger_path

    results = {"world": StageResult("world", "k1", tmp_path, "ran", 0.0)}
    cfg = compose_cfg([f"paths.output_dir={tmp_path}/out", f"paths.cache_dir={tmp_path}/c"])
    assert run_ledger_path(cfg, results) == tmp_path / "out" / "skipped.jsonl"
    cfg = compose_cfg([f"paths.cache_dir={tmp_path}/c"])  # outside Hydra's app: no output dir
    path = run_ledger_path(cfg, results)
    assert path.parent.parent == tmp_path / "c" / "runs" and path.name == "skipped.jsonl"
