"""The record viewer (python -m genixer.view): its files, its bad-input errors, and the page in
a real headless Chromium, from file:// and from --serve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import console_errors, start_chromium
from tests.tiny_run import SCRIPT, expected_entries


@pytest.fixture(scope="module")
def viewer(tiny_run):
    from genixer.runs.viewer import build_viewer

    return build_viewer(tiny_run)


@pytest.fixture(scope="module")
def chromium():
    driver = start_chromium()
    yield driver
    driver.quit()


def _wait_ready(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.body.getAttribute('data-state')") == "ready"
    )


def _shown(driver) -> tuple[int, list[str]]:
    _wait_ready(driver)
    count = int(driver.find_element("id", "record-count").text)
    ids = driver.execute_script(
        "return [...document.querySelectorAll('[data-record-id]')].map(e => e.dataset.recordId)"
    )
    return count, ids


def _choose(driver, select_id: str, text: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", select_id)).select_by_visible_text(text)


def test_the_stage_file_names_are_the_stages_own():
    from genixer.pipeline.stages.generate import FAILURES
    from genixer.pipeline.stages.select import SELECTED
    from genixer.runs import viewer_data

    assert (viewer_data.PARSE_FAILURES, viewer_data.SELECTED) == (FAILURES, SELECTED)


def test_the_viewer_holds_every_entry_in_an_index_and_lazy_pages(tiny_run, viewer, tmp_path):
    from genixer.runs.viewer import PAGE_SIZE, index_of

    expected = expected_entries(tiny_run)
    index_js = (viewer.parent / "data" / "index.js").read_text()
    index = json.loads(index_js.split("=", 1)[1].rstrip().rstrip(";"))
    assert index["id"] == [e["id"] for e in expected]
    statuses = [index["tables"]["status"][s] for s in index["status"]]
    assert statuses == [e["status"] for e in expected]
    page = (viewer.parent / "data" / "page-00000.js").read_text()
    assert SCRIPT not in page  # JSON with ASCII escapes: no raw markup in the data files
    big = index_of([{**_entry(i)} for i in range(3 * PAGE_SIZE)], {})
    assert big["meta"]["total"] == 3 * PAGE_SIZE and big["tables"]["kind"] == ["k0", "k1"]


def _entry(i: int) -> dict:
    return {
        "id": str(i),
        "task": "rec",
        "kinds": [f"k{i % 2}"],
        "score": i / 10,
        "oracle": None,
        "status": "kept",
    }


def test_a_folder_without_its_files_fails_naming_what_is_missing(tiny_run, tmp_path):
    from genixer.runs.viewer import ViewerInputError, build_viewer

    with pytest.raises(ViewerInputError, match="summary.json"):
        build_viewer(tmp_path)
    summary = json.loads(tiny_run.read_text())
    summary["generation"]["records"] = str(tmp_path / "gone" / "records.jsonl")
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ViewerInputError, match=r"generation.records.*gone/records.jsonl"):
        build_viewer(tmp_path / "summary.json")
    (tmp_path / "empty").mkdir()
    for folder, says in (("empty", "missing summary.json"), ("nowhere", "no such run folder")):
        cli = subprocess.run(
            [sys.executable, "-m", "genixer.view", str(tmp_path / folder)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 2 and says in cli.stderr, cli.stderr


def test_an_image_path_out_of_the_root_is_refused(tiny_run, tmp_path):
    from genixer.runs.viewer import place_images

    root = Path(json.loads(tiny_run.read_text())["world_root"])
    entries = [{"image": "../../../secret.png"}, {"image": "/etc/hostname"}]
    assert place_images(entries, root, tmp_path / "viewer") == 0
    assert all(e["image"] is None and "escapes_root" in e["image_error"] for e in entries)
    assert not list((tmp_path / "viewer" / "images").rglob("*.*"))


def test_the_page_in_chromium_filters_draws_boxes_and_escapes_text(
    tiny_run, viewer, chromium, tmp_path
):
    expected = expected_entries(tiny_run)
    chromium.get(viewer.resolve().as_uri())
    count, ids = _shown(chromium)
    assert count == len(expected) and ids == [e["id"] for e in expected]

    def check(rows):
        count, ids = _shown(chromium)
        assert count == len(rows) and ids == [r["id"] for r in rows]

    _choose(chromium, "filter-task", "rec")  # first filter: the task
    check([e for e in expected if e.get("task") == "rec"])
    _choose(chromium, "filter-status", "kept")  # second: what the filter kept
    check([e for e in expected if e.get("task") == "rec" and e["status"] == "kept"])
    _choose(chromium, "filter-task", "all")
    chromium.find_element("id", "score-min").send_keys("0.5")
    check([e for e in expected if e["status"] == "kept" and e["score"] >= 0.5])
    _choose(chromium, "filter-status", "not kept (any reason)")
    _choose(chromium, "filter-verdict", "true")
    check(
        [
            e
            for e in expected
            if e["status"] != "kept" and (e.get("score") or -1) >= 0.5 and e.get("oracle") is True
        ]
    )
    chromium.find_element("id", "filter-reset").click()
    kind = next(k for e in expected for k in sorted(e.get("kinds", [])))
    _choose(chromium, "filter-kind", kind)
    check([e for e in expected if kind in e.get("kinds", ())])
    chromium.find_element("id", "filter-reset").click()
    _shown(chromium)

    rec = next(e for e in expected if e.get("task") == "rec")
    chromium.find_element("css selector", f'[data-record-id="{rec["id"]}"]').click()
    geometry = chromium.execute_script(
        """const img = document.querySelector('#detail img');
           const box = document.querySelector('#detail .box');
           if (!img.complete) return null;
           const a = img.getBoundingClientRect(), b = box.getBoundingClientRect();
           return [a.left, a.top, a.width, a.height, b.left, b.top, b.width, b.height];"""
    )
    assert geometry is not None, "the detail image did not load"
    ix, iy, iw, ih, bx, by, bw, bh = geometry
    boxes = [b for t in _record(tiny_run, rec["id"])["turns"] for b in t["boxes"] or []]
    x0, y0, x1, y1 = boxes[0]
    assert bw > 4 and bh > 4
    assert abs(bx - (ix + x0 * iw)) <= 2 and abs(by - (iy + y0 * ih)) <= 2
    assert abs(bw - (x1 - x0) * iw) <= 2 and abs(bh - (y1 - y0) * ih) <= 2

    script_id = next(e["id"] for e in expected if e["id"].endswith("-script"))
    shown = chromium.find_element("css selector", f'[data-record-id="{script_id}"] .q').text
    assert shown == f"Q: {SCRIPT}"
    assert chromium.execute_script("return document.querySelectorAll('main script').length") == 0
    chromium.save_screenshot(str(tmp_path / "viewer.png"))
    assert (tmp_path / "viewer.png").stat().st_size > 10_000
    assert console_errors(chromium) == []


def _record(summary_path: Path, rid: str) -> dict:
    from genixer.core.record import read_jsonl

    records = json.loads(summary_path.read_text())["generation"]["records"]
    return next(r for r in read_jsonl(records) if r["id"] == rid)


def test_the_served_viewer_loads(tiny_run, chromium, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "genixer.view", str(tiny_run), "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        index = Path(proc.stdout.readline().strip())
        url = proc.stdout.readline().strip()
        assert index == tiny_run.parent / "viewer" / "index.html", proc.stderr.read()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/index.html")
        chromium.get(url)
        count, ids = _shown(chromium)
        assert count == len(expected_entries(tiny_run)) and len(ids) == count
        assert (
            chromium.execute_script("return document.querySelector('.record img').naturalWidth") > 0
        )
        assert console_errors(chromium) == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
