"""How stages read what other stages wrote, and the training steps several stages share.

A stage's folder is its only output; these readers are the one way into the folders of the
world, collect and vision stages (images by split, the project tokenizer, the pretrained
tower), and :func:`fit_vlm` / :func:`fit_dataset` / :func:`new_vlm` are the one way a stage
trains a model (of any family, through its processor) or starts a tiny LLaVA-architecture one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from genixer.core.build import build, to_plain
from genixer.models.tokenizer import load_tokenizer, tokenizer_at  # noqa: F401 (re-used by stages)
from genixer.models.vision_pretrain import load_tower
from genixer.pipeline.cache import StageResult
from genixer.pipeline.stage import RunContext
from genixer.training.data import EncodedDataset
from genixer.training.fit import fit, seed_model_init
from genixer.world.base import WorldImage, read_index


@lru_cache(maxsize=4)
def world_splits(world_folder: Path) -> dict[str, list[WorldImage]]:
    """The world's images by split (read once per folder; callers must not mutate it)."""
    return read_index(world_folder)


@lru_cache(maxsize=4)
def images_by_id(world_folder: Path) -> dict[str, WorldImage]:
    return {i.id: i for items in world_splits(world_folder).values() for i in items}


@lru_cache(maxsize=4)
def project_tokenizer(collect_folder: Path):
    """The tokenizer the collect stage built from the collection's texts."""
    return load_tokenizer(collect_folder / "tokenizer")


def vlm_examples(rows: list[dict], by_id: dict[str, WorldImage]) -> list:
    """Plain conversation rows as ``(image, turns)`` training examples."""
    return [(by_id[r["image_id"]], [tuple(t) for t in r["turns"]]) for r in rows]


def new_vlm(model_cfg, tokenizer, seed: int, tag: str, vision: StageResult | None = None):
    """A fresh tiny VLM; its vision tower from the vision pretraining stage, if it ran."""
    seed_model_init(seed, tag)
    model = build(model_cfg, tokenizer=tokenizer)
    if vision is not None:
        load_tower(model, vision.path)
    return model


def fit_vlm(
    ctx: RunContext,
    model,
    processor,
    examples: list,
    *,
    train,
    world: Path,
    folder: Path,
    seed: int,
) -> dict:
    """Train a model of any family on ``(image, turns)`` examples through its processor
    (one phase)."""
    dataset = EncodedDataset(examples, processor.encode, world)
    return fit_dataset(ctx, model, processor, dataset, train=train, folder=folder, seed=seed)


def fit_dataset(ctx: RunContext, model, processor, dataset, *, train, folder: Path, seed: int):
    """One training phase of ``model`` on an encoded dataset, batches collated by its
    ``processor`` (any processor with ``collate(items, padding_side=...)``)."""
    return fit(
        model,
        dataset,
        processor.collate,
        train=to_plain(train),
        trainer_cfg=ctx.cfg.trainer,
        seed=seed,
        log_dir=folder / "logs",
        checkpoint_every=ctx.checkpoint_every,
    )
