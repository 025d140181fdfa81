"""Train any of the project's models on encoded examples with Lightning."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import lightning as L

from genixer.training.data import EncodedDataset, InstructionDataModule
from genixer.training.module import InstructionTuningModule, NonFiniteLossError
from genixer.training.progress import ProgressLog
from genixer.training.resume import LAST, FiniteCheckpoint, checkpoint_step, last_checkpoint
from genixer.utils import build


def fit(
    model,
    dataset: EncodedDataset,
    collate,
    train_cfg: dict,
    trainer_cfg,
    seed: int,
    log_dir: str | Path,
    checkpoint_every: int = 0,
) -> dict:
    """Train ``model`` in place for ``train_cfg['steps']`` optimizer steps.

    ``train_cfg`` keys: steps, batch_size, lr, and optionally weight_decay, warmup_ratio,
    min_lr_ratio, trainable, position_jitter. Returns counts for the stage's manifest.

    ``checkpoint_every > 0`` saves ``<log_dir>/checkpoints/last.ckpt`` every that many steps
    and at the end; a call with the same arguments finding one resumes from it and ends
    with the weights an uninterrupted run gives (:mod:`genixer.training.resume`). A NaN or
    inf loss stops training with :class:`NonFiniteLossError`, the last good checkpoint kept.
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
        position_jitter=train_cfg.get("position_jitter", 0),
        seed=seed,
    )
    data = InstructionDataModule(
        dataset, partial(collate, padding_side="right"), train_cfg["batch_size"], seed
    )
    progress = ProgressLog(name=Path(log_dir).parent.parent.name)
    callbacks: list = [progress]
    extra: dict = {}
    ckpt_dir = Path(log_dir) / "checkpoints"
    resume_from = None
    if checkpoint_every > 0:
        callbacks.append(FiniteCheckpoint(ckpt_dir, checkpoint_every))
        extra["enable_checkpointing"] = True
        resume_from = last_checkpoint(log_dir)
    start_step = checkpoint_step(resume_from) if resume_from else None
    trainer = build(
        trainer_cfg,
        max_steps=int(train_cfg["steps"]),
        default_root_dir=str(log_dir),
        callbacks=callbacks,
        **extra,
    )
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    except NonFiniteLossError as err:
        last = ckpt_dir / LAST
        kept = (
            f"the last good checkpoint is {last} (step {checkpoint_step(last)}): a re-run "
            "resumes from it"
            if last.exists()
            else "no checkpoint was saved before it"
        )
        raise NonFiniteLossError(f"training in {log_dir} stopped: {err} {kept}.") from err
    loss = trainer.callback_metrics.get("train/loss")
    return {
        "examples": len(dataset),
        "skipped": dict(dataset.skipped),
        "steps": int(trainer.global_step),
        "resumed_from_step": start_step,
        "final_loss": float(loss) if loss is not None else math.nan,
        "steps_per_s": progress.rate(),
        "images_per_s": progress.example_rate(),
        "tokens_per_s": progress.token_rate(),
        "images_seen": progress.examples,
        "tokens_seen": progress.tokens,
        "train_seconds": round(progress.seconds(), 3),
    }
