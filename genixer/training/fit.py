"""Train any of the project's models on encoded examples with Lightning."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import lightning as L
import torch

from genixer.core.build import build
from genixer.core.record import stable_seed
from genixer.training.data import EncodedDataset, InstructionDataModule
from genixer.training.module import InstructionTuningModule, NonFiniteLossError
from genixer.training.progress import ProgressLog
from genixer.training.resume import LAST, FiniteCheckpoint, checkpoint_step, last_checkpoint


def seed_model_init(seed: int, tag: str) -> None:
    """Seed torch for a new model's initial weights, one stream per role (base, judge...)."""
    torch.manual_seed(stable_seed(seed, tag))


def fit(
    model,
    dataset: EncodedDataset,
    collate,
    *,
    train,
    trainer_cfg,
    seed: int,
    log_dir: str | Path,
    checkpoint_every: int = 0,
) -> dict:
    """Train ``model`` in place for ``train["steps"]`` optimizer steps.

    ``train`` (a phase of the config): steps, batch_size, lr, warmup_ratio, trainable, and
    optionally weight_decay and min_lr_ratio (else the module's recipe values) and
    group_by_length (batches of similar lengths; ``dataset.lengths`` estimates them).
    Returns counts for the stage's manifest.

    ``checkpoint_every > 0`` saves ``<log_dir>/checkpoints/last.ckpt`` every that many steps
    and at the end; a call with the same arguments finding one resumes from it and ends
    with the weights an uninterrupted run gives (:mod:`genixer.training.resume`). A NaN or
    inf loss stops training with :class:`NonFiniteLossError`, the last good checkpoint kept.
    """
    if len(dataset) == 0:
        raise ValueError("no training examples")
    optional = {k: train[k] for k in ("weight_decay", "min_lr_ratio") if k in train}
    module = InstructionTuningModule(
        model,
        lr=train["lr"],
        warmup_ratio=train["warmup_ratio"],
        trainable=train["trainable"],
        **optional,
    )
    data = InstructionDataModule(
        dataset,
        partial(collate, padding_side="right"),
        train["batch_size"],
        seed,
        group_by_length=bool(train.get("group_by_length", False)),
    )
    info = fit_module(
        module,
        data,
        steps=int(train["steps"]),
        trainer_cfg=trainer_cfg,
        seed=seed,
        log_dir=log_dir,
        checkpoint_every=checkpoint_every,
    )
    return {"examples": len(dataset), "skipped": dict(dataset.skipped)} | info


def fit_module(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    steps: int,
    trainer_cfg,
    seed: int,
    log_dir: str | Path,
    checkpoint_every: int = 0,
) -> dict:
    """Run ``trainer_cfg``'s Lightning trainer on ``module`` for ``steps`` optimizer steps:
    what every model of the project trains through (:func:`fit`, the CLIP filter's
    contrastive training).

    Seeds everything with ``seed`` first. ``checkpoint_every > 0`` saves
    ``<log_dir>/checkpoints/last.ckpt`` every that many steps, never with bad weights
    (:class:`FiniteCheckpoint`); a call finding one resumes from it, and a datamodule
    whose order follows the restored step (:class:`InstructionDataModule`) ends with the
    weights of an uninterrupted run. A :class:`NonFiniteLossError` from the module is
    re-raised with where the last good checkpoint is. The batches must carry an
    ``attention_mask`` (:class:`ProgressLog` counts examples and tokens by it).

    Returns the steps trained to, the step resumed from, the last logged ``train/loss``
    and the rates of :class:`ProgressLog`.
    """
    L.seed_everything(seed, workers=True, verbose=False)
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
        max_steps=int(steps),
        default_root_dir=str(log_dir),
        callbacks=callbacks,
        **extra,
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except NonFiniteLossError as err:
        raise _stopped(err, log_dir) from err
    loss = trainer.callback_metrics.get("train/loss")
    return {
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


def _stopped(err: NonFiniteLossError, log_dir: str | Path) -> NonFiniteLossError:
    """The error for a run a NaN/inf loss stopped: where it can resume from."""
    last = Path(log_dir) / "checkpoints" / LAST
    kept = (
        f"the last good checkpoint is {last} (step {checkpoint_step(last)}): a re-run "
        "resumes from it"
        if last.exists()
        else "no checkpoint was saved before it"
    )
    return NonFiniteLossError(f"training in {log_dir} stopped: {err} {kept}.")
