"""The GPU side of ``trainer=...``: TF32 and gradient checkpointing, for any strategy.

``conf/trainer/gpu.yaml`` and the DeepSpeed files target :func:`make_trainer`: it takes
``lightning.Trainer``'s arguments plus two flags and turns the flags into callbacks, so the
callers (``fit`` passes its own ``callbacks=[...]``) need not know about them:

- ``tf32``: TF32 matmuls and convolutions on Ampere+ GPUs (:class:`TF32`), set in every
  process at setup;
- ``gradient_checkpointing``: recompute activations in the backward pass to save memory
  (:class:`GradientCheckpointing`), on every transformers model inside the LightningModule,
  switched on at setup (before DeepSpeed wraps the model) and off at teardown, so a model
  later used for generation is left as it was built.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from transformers import PreTrainedModel

log = logging.getLogger(__name__)


class TF32(L.Callback):
    """Allow TensorFloat-32 in matmuls and cuDNN convolutions (no-op without a GPU)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")


def _hf_models(module: torch.nn.Module) -> list[PreTrainedModel]:
    """The outermost transformers models inside ``module`` (a model's own sub-models, such as
    LLaVA's CLIP tower, are handled by the outer model's switch)."""
    if isinstance(module, PreTrainedModel):
        return [module]
    return [m for child in module.children() for m in _hf_models(child)]


class GradientCheckpointing(L.Callback):
    """Activation checkpointing on the transformers models of the LightningModule."""

    def __init__(self, use_reentrant: bool = False) -> None:
        self.use_reentrant = use_reentrant
        self.enabled: list[PreTrainedModel] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        models = [
            m for m in _hf_models(pl_module) if getattr(m, "supports_gradient_checkpointing", 0)
        ]
        if not models:
            log.warning(
                "gradient checkpointing: no transformers model in %s, nothing to do",
                type(pl_module).__name__,
            )
        for model in models:
            if not model.is_activation_checkpointing:
                # non-reentrant checkpointing works with frozen inputs, DDP and DeepSpeed
                model.activation_checkpointing_enable(
                    activation_checkpointing_kwargs={"use_reentrant": self.use_reentrant}
                )
                self.enabled.append(model)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for model in self.enabled:
            model.activation_checkpointing_disable()
        self.enabled = []


def make_trainer(
    *, tf32: bool = False, gradient_checkpointing: bool = False, callbacks=None, **trainer_kwargs
) -> L.Trainer:
    """``lightning.Trainer(**trainer_kwargs)`` with the callbacks the two flags ask for."""
    extra: list[L.Callback] = []
    if tf32:
        extra.append(TF32())
    if gradient_checkpointing:
        extra.append(GradientCheckpointing())
    return L.Trainer(callbacks=[*(callbacks or []), *extra], **trainer_kwargs)
