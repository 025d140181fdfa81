"""One LightningModule for instruction tuning: generators, the judge and downstream models.

The batch is whatever the model's processor collates, so the module just calls
``model(**batch)``; the loss is the model's own, on the assistant tokens the processor marked.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from genixer.models.positions import restart_position_ids

# Which parameters a phase trains. "projector" is LLaVA's first stage (feature alignment).
TRAINABLE = {
    "all": lambda name: True,
    "projector": lambda name: "multi_modal_projector" in name,
    "no_vision": lambda name: "vision_tower" not in name,
}


class NonFiniteLossError(RuntimeError):
    pass


class InstructionTuningModule(L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.1,
        trainable: str = "all",
        betas: tuple[float, float] = (0.9, 0.98),
        position_jitter: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.position_jitter = int(position_jitter)
        self.seed = int(seed)
        config = getattr(model, "config", None)
        self.image_token_id = getattr(config, "image_token_index", None)
        self.restart_markers = getattr(config, "position_restart_markers", None)
        if self.position_jitter and self.restart_markers:
            raise ValueError(
                "position_jitter and the model's position_restart both set position ids"
            )
        if self.position_jitter < 0:
            raise ValueError(f"position_jitter must be >= 0, got {position_jitter}")
        if self.position_jitter and self.image_token_id is None:
            raise ValueError("position_jitter needs a model with image tokens (a LLaVA config)")
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.min_lr_ratio = min_lr_ratio
        self.betas = tuple(betas)
        if trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {sorted(TRAINABLE)}, got {trainable!r}")
        self.trainable = trainable
        for name, p in model.named_parameters():
            p.requires_grad_(TRAINABLE[trainable](name))
        # Parameters that can never get a gradient stay frozen whatever the phase says.
        refreeze = getattr(model, "freeze_unused_parameters", None)
        if callable(refreeze):
            refreeze()
        # A model from ``from_pretrained`` comes in eval mode, and Lightning keeps each
        # module's mode as it finds it: without this a loaded model would train with its
        # dropout off. Frozen parts train in train mode too, as in LLaVA's own recipe.
        model.train()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.position_jitter:
            batch = dict(batch, position_ids=self.jittered_positions(batch["input_ids"]))
        elif self.restart_markers:
            ids = restart_position_ids(
                batch["input_ids"],
                batch.get("attention_mask"),
                self.image_token_id,
                self.restart_markers,
            )
            batch = dict(batch, position_ids=ids)
        loss = self.model(**batch).loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step}; lower the learning rate "
                "or check the data. The last saved checkpoint is kept."
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def jittered_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Position ids with the text after each row's image moved on by a random 0..jitter
        (drawn from the seed and the step, so a resumed run draws the same). Without it a
        tiny language model finds an image cell by its distance from the question: a base
        model trained on single questions answered ``object_at`` at 0.98 asked alone and
        0.34 after a few other turns (measured). Shifted, only the tower's features say where
        each patch is; measured, the language model does not learn to read them (README:
        "Not even an explicit cell code is read")."""
        n, length = input_ids.shape
        steps = torch.arange(length, device=input_ids.device)
        is_image = input_ids == self.image_token_id
        last_image = torch.where(is_image.any(1), (is_image * steps).argmax(1), -1)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.global_step))
        shift = torch.randint(0, self.position_jitter + 1, (n,), generator=gen)
        after = steps[None, :] > last_image[:, None]
        return steps[None, :] + after * shift.to(input_ids.device)[:, None]

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(
            params, lr=self.lr, weight_decay=self.weight_decay, betas=self.betas
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, int(total * self.warmup_ratio))
        floor = self.min_lr_ratio

        def schedule(step: int) -> float:  # linear warmup, cosine decay to floor * lr
            if step < warmup:
                return (step + 1) / warmup
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
