"""Shared test settings: the real Hydra config, composed and shrunk to seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CONF = str(Path(__file__).resolve().parents[1] / "conf")
# One CPU process, nothing logged or saved: the trainer of tests that call fit directly.
CPU_TRAINER = OmegaConf.create(
    {
        "_target_": "lightning.Trainer",
        "accelerator": "cpu",
        "devices": 1,
        "precision": "32-true",
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "enable_progress_bar": False,
    }
)

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
        "filter.vision_pretrain.steps=2",
        *TINY_JUDGE,
    ],
    "clip": [
        "filter.train.steps=2",
        "filter.train.batch_size=8",
        "filter.model.spec.vision_layers=1",
        "filter.model.spec.text_layers=1",
    ],
    "none": [],
    "oracle": [],
    "vlm_judge": [  # plus filter.checkpoint: a folder of genixer.models.hf.tiny
        "filter.batch_size=8",
        "filter.train={steps:2,batch_size:8,lr:1e-3,warmup_ratio:0.03,items_per_image:2,"
        "hard_negatives:0.5,vqa_per_image:0,answerable:0.8,explain:true}",
    ],
}
# The project's own tiny generator: its size and its vision pretraining (not for generator=hf).
GENERATOR_TINY = [*TINY_VLM, "generator.vision_pretrain.steps=2"]


def tiny_overrides(tmp: Path, filter_name: str = "fuyu", generator: str = "llava") -> list[str]:
    """A whole pipeline in well under a minute: a few images, a few steps per stage.
    ``generator=hf`` also needs ``generator.checkpoint`` (a folder of genixer.models.hf.tiny)."""
    return [
        *([f"generator={generator}"] if generator != "llava" else []),
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
        "downstream.pretrain=[{steps:1,batch_size:8,lr:1e-3,trainable:projector,warmup_ratio:0.03},"
        "{steps:1,batch_size:8,lr:1e-3,trainable:all,warmup_ratio:0.03}]",
        "generate.max_new_tokens=6",
        "generate.shard_size=4",
        "trainer.enable_progress_bar=false",
        *(GENERATOR_TINY if generator != "hf" else []),
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

    from genixer.filters.judge_scoring import score_records

    score_records(
        judge,
        processor,
        records,
        world=root,
        folder=folder,
        out_name="s.jsonl",
        mode=mode,
        batch_size=batch_size,
        seed=seed,
    )
    rows = [json.loads(line) for line in (Path(folder) / "s.jsonl").read_text().splitlines()]
    return {r["id"]: r["score"] for r in rows}


# A LLaVA-architecture VLM small enough to build in milliseconds (build_vlm's spec).
TINY_VLM_SPEC = {
    "image_size": 32,
    "patch_size": 16,
    "vision_hidden": 16,
    "vision_layers": 1,
    "vision_heads": 2,
    "vision_intermediate": 32,
    "text_hidden": 32,
    "text_layers": 1,
    "text_heads": 2,
    "text_intermediate": 64,
    "projector_type": "mlp2x_gelu",
    "max_position_embeddings": 256,
}


def tiny_judge(seed: int = 0):
    """A random-weight Fuyu judge and its processor, with a tokenizer that has Yes and No."""
    import torch

    from genixer.models.fuyu.model import build_judge
    from genixer.models.fuyu.processor import JudgeProcessor
    from genixer.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["Here is a question and answer pair. Yes No"] * 3, 300)
    torch.manual_seed(seed)
    spec = {
        "image_size": 48,
        "patch_size": 16,
        "hidden": 32,
        "layers": 1,
        "heads": 2,
        "intermediate": 64,
        "max_position_embeddings": 256,
    }
    judge = build_judge(spec, tok)
    return judge, JudgeProcessor.for_model(judge, tok)


def truth_records(images) -> list:
    """One ground-truth record per image, cycling through the generic tasks."""
    import random

    from genixer.core.record import Record
    from genixer.tasks import GENERIC_TASKS, get_task

    rng, records = random.Random(0), []
    for i, img in enumerate(images):
        task = get_task(GENERIC_TASKS[i % len(GENERIC_TASKS)])
        turns = task.sample(img.scene, rng)
        records.append(Record(f"r{i}", img.id, img.path, task.name, task.name, turns, ""))
    return records


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One finished run's folder (no training: tests/tiny_run.py), shared by the viewer, card
    and export tests; its ``summary.json`` path."""
    from tests.tiny_run import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("tiny_run"))
