"""Shared test settings: the real Hydra config, composed and shrunk to seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CONF = str(Path(__file__).resolve().parents[1] / "conf")

TINY_VLM = [
    "generator.model.spec.vision_hidden=32",
    "generator.model.spec.vision_layers=1",
    "generator.model.spec.vision_heads=2",
    "generator.model.spec.vision_intermediate=64",
    "generator.model.spec.text_hidden=32",
    "generator.model.spec.text_layers=1",
    "generator.model.spec.text_heads=2",
    "generator.model.spec.text_intermediate=64",
]
TINY_JUDGE = [
    "filter.model.spec.hidden=32",
    "filter.model.spec.layers=1",
    "filter.model.spec.heads=2",
    "filter.model.spec.intermediate=64",
]


FILTER_TINY = {
    "fuyu": [
        "filter.train.steps=2",
        "filter.train.batch_size=8",
        "filter.train.items_per_image=2",
        *TINY_JUDGE,
    ],
    "clip": [
        "filter.train.steps=2",
        "filter.train.batch_size=8",
        "filter.model.spec.vision_layers=1",
        "filter.model.spec.text_layers=1",
    ],
    "none": [],
}


def tiny_overrides(tmp: Path, filter_name: str = "fuyu") -> list[str]:
    """A whole pipeline in well under a minute: a few images, a few steps per stage."""
    return [
        f"filter={filter_name}",
        *FILTER_TINY[filter_name],
        f"paths.cache_dir={tmp}/cache",
        f"paths.root_dir={tmp}",
        f"paths.output_dir={tmp}/out",
        "world.splits.collection=24",
        "world.splits.pool=8",
        "generate.per_image=2",
        "world.splits.judge=8",
        "world.splits.downstream=6",
        "world.splits.benchmark=6",
        "generator.vocab_size=400",
        "generator.base_train.steps=2",
        "generator.base_train.batch_size=8",
        "generator.gen_train.steps=2",
        "generator.gen_train.batch_size=8",
        "downstream.finetune.steps=2",
        "downstream.finetune.batch_size=8",
        "downstream.pretrain=[{steps:1,batch_size:8,lr:1e-3,trainable:projector},"
        "{steps:1,batch_size:8,lr:1e-3,trainable:all}]",
        "generate.max_new_tokens=6",
        "generate.shard_size=4",
        "trainer.enable_progress_bar=false",
        "generator.vision_pretrain.steps=2",
        *TINY_VLM,
    ]


@pytest.fixture
def compose_cfg():
    """Compose the real config with overrides, Hydra's own way (hydra resolvers set)."""
    from hydra import compose, initialize_config_dir

    def _compose(overrides: list[str]):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=True)

    return _compose


def judge_scores(judge, processor, records, root, folder, mode="p_yes", batch_size=4, seed=0):
    """Record id -> score through the production scorer (sharded runner, one process)."""
    import json

    from genixer.stages.judge_score import score_records

    score_records(judge, processor, records, root, folder, "s.jsonl", mode, batch_size, seed)
    rows = [json.loads(line) for line in (Path(folder) / "s.jsonl").read_text().splitlines()]
    return {r["id"]: r["score"] for r in rows}
