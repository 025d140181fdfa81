"""The benchmark harness (``python -m benchmarks``): one comparison at a tiny size, the row
schema of ``latest.json`` and the table. Timings are never asserted."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.env import ban_tokens, make_env
from benchmarks.generation import generation_rows
from benchmarks.gpu import check_config, gpu_rows
from benchmarks.harness import ROW_KEYS, Row, table, write_results
from benchmarks.scoring import clip_row


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_env(tmp_path_factory.mktemp("bench"), pool=4, judge=4, collection=20)


def check_row(row: dict) -> None:
    assert tuple(row) == ROW_KEYS
    assert isinstance(row["name"], str) and row["name"]
    assert isinstance(row["unit"], str) and row["unit"]
    if row["met"] is None:  # a skipped row (or one without a target)
        assert row["ratio"] is None or row["target"] is None
        return
    for key in ("ours", "baseline", "ratio", "target"):
        assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0
    assert row["met"] == (row["ratio"] >= row["target"])


def test_clip_comparison_row_and_results_files(env, tmp_path):
    row = clip_row(env, n=6, reps=1)
    data = row.to_json()
    check_row(data)
    assert data["unit"] == "crops/s"
    assert data["ratio"] == pytest.approx(row.ours / row.baseline, rel=1e-3)
    json_path, md_path = write_results([row], tmp_path, "# header")
    assert json.loads(json_path.read_text()) == [data]
    md = md_path.read_text()
    assert md.startswith("# header") and row.name in md


def test_generation_rows_run_through_the_stage(env):
    """Guards the harness against changes of the generate stage's public function."""
    rows = [r.to_json() for r in generation_rows(env, n_images=2, max_new_tokens=2, reps=1)]
    assert [r["unit"] for r in rows] == ["images/s", "images/s"]
    for row in rows:
        check_row(row)


def test_cost_rows_are_oriented_higher_is_better():
    row = Row("memory", ours=120.0, baseline=100.0, target=1 / 1.2, unit="MiB", ratio=100 / 120)
    assert row.to_json()["met"] is True
    assert Row("x", ours=2.0, baseline=4.0, target=0.9, unit="steps/s").met is False
    assert "| x |" in table([Row("x", 1.0, 1.0, 1.0, "s")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip row is for machines without CUDA")
def test_gpu_section_is_a_skip_row_without_cuda(env):
    (row,) = gpu_rows(env, max_new_tokens=4, reps=1)
    data = row.to_json()
    check_row(data)
    assert data["ours"] is None and data["met"] is None and "no CUDA" in row.note


def test_llava_7b_architecture_has_7b_parameters(env):
    assert 7.0e9 < check_config(env.tokenizer) < 7.1e9  # LLaVA-1.5-7B: 7.06B


def test_banned_token_is_never_generated(env):
    model, processor = env.generator()
    hook = ban_tokens(model, [processor.eos_id])
    out = model.lm_head(torch.zeros(2, 3, model.config.text_config.hidden_size))
    hook.remove()
    assert torch.isinf(out[..., processor.eos_id]).all()
    assert torch.isfinite(out[..., processor.eos_id + 1]).all()


def test_cli_writes_latest_files(tmp_path, capsys):
    assert main(["--quick", "--only", "clip", "--reps", "1", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "latest.json").read_text())
    assert [r["name"] for r in rows] == ["clip: batched crops vs one crop at a time"]
    check_row(rows[0])
    assert "| clip: batched crops" in capsys.readouterr().out
