"""The tiny pipeline end to end on the built-in world with a transformers chat model as the
generator, the judge and the downstream model (a Qwen2-VL-family tiny folder); and folders
the hf family cannot load refused before any stage runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from genixer.core.record import read_records
from genixer.models.hf import tiny
from genixer.models.hf.model import UnsupportedCheckpointError
from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> Path:
    return tiny.build("qwen2_vl", tmp_path_factory.mktemp("qwen") / "ckpt")


def hf_overrides(tmp: Path, ckpt: Path) -> list[str]:
    return [
        *tiny_overrides(tmp, "vlm_judge", generator="hf"),
        f"generator.checkpoint={ckpt}",
        f"filter.checkpoint={ckpt}",
    ]


def test_generator_judge_and_downstream_from_one_hf_folder(compose_cfg, tmp_path, qwen):
    from genixer.pipeline.runner import run_pipeline

    cfg = compose_cfg(hf_overrides(tmp_path, qwen))
    assert cfg.downstream.checkpoint == str(qwen)  # downstream=hf follows the generator
    run = run_pipeline(cfg)
    summary, results = run.summary, run.results
    assert "pretrain_vision" not in results  # the checkpoint brings its own tower
    assert results["train_base"].info["from_checkpoint"] == str(qwen)
    assert (results["train_generator"].path / "model" / "chat_template.jinja").is_file()
    records = read_records(Path(summary["generation"]["records"]))
    requested = summary["generation"]["num_records"] + summary["generation"]["parse_failures"]
    assert requested == 8 * 2  # every request answered (parsed or ledgered)
    assert all(r.provenance["generator"] == "genixer_hf" for r in records)
    assert results["score"].info["scored"] == len(records)
    assert results["train_vlm_judge"].info["steps"] == 2  # filter.train fine-tuned it
    assert 0.0 <= summary["downstream"]["baseline_accuracy"] <= 1.0
    assert summary["downstream"]["accuracy"] is not None


def test_a_folder_the_family_cannot_load_is_refused_before_any_stage(compose_cfg, tmp_path, qwen):
    from genixer.pipeline.runner import run_pipeline

    bad = tmp_path / "text_only"
    shutil.copytree(qwen, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(config | {"model_type": "qwen2"}))
    cfg = compose_cfg([*hf_overrides(tmp_path, qwen), f"filter.checkpoint={bad}"])
    with pytest.raises(UnsupportedCheckpointError, match="text-only model"):
        run_pipeline(cfg)
    assert not (tmp_path / "cache").exists()  # no stage ran
