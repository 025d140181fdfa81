"""The export stage on a finished run's folders: export.formats=[llava, hf] writes parquet
shards the datasets library reads back with every field, and the dataset card."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The real export stage run over the tiny run's stage folders, hf on."""
    from hydra import compose, initialize_config_dir

    from genixer.pipeline.cache import StageResult
    from genixer.pipeline.stage import RunContext
    from genixer.pipeline.stages.export import Export
    from tests.conftest import CONF

    tmp = tmp_path_factory.mktemp("export")
    (tmp / "model").mkdir()  # the trained generator's weights, as train_generator leaves them
    (tmp / "model" / "model.safetensors").write_bytes(b"generator weights")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", [*tiny_overrides(tmp, "oracle"), "export.formats=[llava,hf]"])
    summary = json.loads(tiny_run.read_text())
    gen = summary["generation"]
    folders = {
        "world": (Path(summary["world_root"]), {"images": {"pool": 6}}),
        "generate": (Path(gen["records"]).parent, gen),
        "dedup": (Path(gen["deduplicated_records"]).parent, {"num_records": 31}),
        "score": (Path(summary["filter"]["scores"]).parent, {"auroc": None}),
        "select": (Path(summary["select"]["records"]).parent, summary["select"]),
        "train_generator": (tmp, {}),
    }
    inputs = {k: StageResult(k, f"key-{k}", p, "ran", 0.0, i) for k, (p, i) in folders.items()}
    folder = tmp / "export"
    folder.mkdir()
    info = Export().run(RunContext(cfg, None, None), inputs, folder)
    return folder, info, summary


def _kept(summary: dict) -> list:
    from genixer.core.record import read_records

    return read_records(summary["select"]["records"])


def test_hf_parquet_reads_back_with_every_field(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    from genixer.pipeline.stages.export import llava_entry

    folder, info, summary = exported
    kept = _kept(summary)
    assert info["hf_rows"] == len(kept) > 0 and info["hf_shards"] == 1
    ds = load_dataset("parquet", data_dir=str(folder / "hf"), cache_dir=str(tmp_path))["train"]
    assert ds.features["image"].__class__.__name__ == "Image"
    scores = {json.loads(x)["id"]: json.loads(x)["score"] for x in _lines(summary)}
    assert len(ds) == len(kept)
    for row, rec in zip(ds, kept, strict=True):
        assert (row["id"], row["image_path"], row["image_id"]) == (rec.id, rec.image, rec.image_id)
        assert (row["task"], row["requested_task"], row["raw"]) == (
            rec.task,
            rec.requested_task,
            rec.raw,
        )
        turns = [
            {
                "question": t.question,
                "answer": t.answer,
                "options": t.options,
                "kind": t.kind,
                "boxes": t.boxes,
            }
            for t in rec.turns
        ]
        assert row["turns"] == turns
        assert row["conversations"] == llava_entry(rec)["conversations"]
        assert (row["score"], row["oracle"]) == (scores[rec.id], rec.oracle)
        assert row["template_id"] == rec.provenance["template_id"]
        assert (row["generator"], row["seed"]) == (
            rec.provenance["generator"],
            rec.provenance["seed"],
        )
        with Image.open(folder / "images" / rec.image) as im:
            assert np.array_equal(np.asarray(row["image"]), np.asarray(im))
    # the card's configs name the same files: the folder loads as a dataset by itself
    again = load_dataset(str(folder), cache_dir=str(tmp_path / "by-card"))["train"]
    assert again["id"] == ds["id"]


def _lines(summary: dict) -> list[str]:
    return Path(summary["filter"]["scores"]).read_text().splitlines()


def test_the_dataset_card_says_where_the_data_came_from(exported):
    from huggingface_hub import DatasetCard

    folder, _, summary = exported
    text = (folder / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["task_categories"] == [
        "image-text-to-text",
        "object-detection",
        "visual-question-answering",
    ]
    assert header["size_categories"] == ["n<1K"] and header["license"] == "other"
    assert header["configs"][0]["data_files"][0]["path"] == "hf/data/train-*.parquet"
    card = DatasetCard(text)  # the Hub's own parser reads the header
    assert card.data.license == "other" and "n<1K" in card.data.size_categories
    n_kept = len(_kept(summary))
    weights = hashlib.sha256(b"model.safetensors" + b"generator weights").hexdigest()
    for said in (
        f"sha256: `{weights}`",
        "## Generator",
        "build_vlm",
        "cache key `key-train_generator`",
        "tau",
        "templates",
        "temperature",
        "filter `oracle`",
        "| exported | " + str(n_kept) + " |",
        '"no_answer": 1',
        '"corrupt": 1',
        '"duplicate_same_image": 1',
        "oracle accuracy",
        "python",
        'load_dataset("parquet", data_dir="hf")',
        "genixer project",
    ):
        assert said in text, said


def test_a_folder_world_license_is_unknown():
    from omegaconf import OmegaConf

    from genixer.pipeline.card import CardFacts, front_matter

    cfg = OmegaConf.create(
        {
            "world": {"_target_": "genixer.sources.folder.FolderWorld"},
            "task": {"name": "rec"},
            "generator": {"name": "g", "collection": {"tasks": ["rec"]}},
        }
    )
    facts = CardFacts(cfg=cfg, kept=[], infos={}, keys={}, skipped={}, formats=["llava"])
    header = front_matter(facts)
    assert header["license"] == "unknown" and "configs" not in header
    assert header["task_categories"] == ["image-text-to-text", "object-detection"]
