"""Train any of the project's models on encoded examples with Lightning."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import lightning as L

from genixer.training.data import EncodedDataset, InstructionDataModule
from genixer.training.module import InstructionTuningModule
from genixer.training.progress import ProgressLog
from genixer.utils import build


def fit(
    model,
    dataset: EncodedDataset,
    collate,
    train_cfg: dict,
    trainer_cfg,
    seed: int,
    log_dir: str | Path,
) -> dict:
    """Train ``model`` in place for ``train_cfg['steps']`` optimizer steps.

    ``train_cfg`` keys: steps, batch_size, lr, and optionally weight_decay, warmup_ratio,
    min_lr_ratio, trainable. Returns counts for the stage's manifest.
    """
    if len(dataset) == 0:
        raise ValueError("no training examples")
    L.seed_everything(seed, workers=True, verbose=False)
    module = InstructionTuningModule(
        model,
        lr=train_cfg["lr"],
        weight_decay=train_cfg.get("weight_decay", 0.0),
        warmup_ratio=train_cfg.get("warmup_ratio", 0.03),
        min_lr_ratio=train_cfg.get("min_lr_ratio", 0.1),
        trainable=train_cfg.get("trainable", "all"),
    )
    data = InstructionDataModule(
        dataset, partial(collate, padding_side="right"), train_cfg["batch_size"], seed
    )
    progress = ProgressLog(name=Path(log_dir).parent.parent.name)
    trainer = build(
        trainer_cfg,
        max_steps=int(train_cfg["steps"]),
        default_root_dir=str(log_dir),
        callbacks=[progress],
    )
    trainer.fit(module, datamodule=data)
    loss = trainer.callback_metrics.get("train/loss")
    return {
        "examples": len(dataset),
        "skipped": dict(dataset.skipped),
        "steps": int(trainer.global_step),
        "final_loss": float(loss) if loss is not None else math.nan,
        "steps_per_s": progress.rate(),
        "tokens_per_s": progress.token_rate(),
    }
