"""One LightningModule for instruction tuning: generators, the judge and downstream models.

The batch is whatever the model's processor collates, so the module just calls
``model(**batch)``; the loss is the model's own, on the assistant tokens the processor marked.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from genixer.training.roles import trainable_names


class NonFiniteLossError(RuntimeError):
    pass


class InstructionTuningModule(L.LightningModule):
    """AdamW (betas 0.9 / 0.98) with a linear warmup and a cosine decay to ``min_lr_ratio``
    of ``lr``; the phase's ``trainable`` parameters only. A phase of the config may leave out
    ``weight_decay`` and ``min_lr_ratio``: this recipe's own values (0 and 0.1) apply."""

    betas = (0.9, 0.98)

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        lr: float,
        warmup_ratio: float,
        trainable: str,
        weight_decay: float = 0.0,
        min_lr_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.min_lr_ratio = min_lr_ratio  # the cosine ends at this share of lr
        self.trainable = trainable
        trained = trainable_names(model, trainable)  # by module role (genixer.training.roles)
        for name, p in model.named_parameters():
            p.requires_grad_(name in trained)
        # Parameters that can never get a gradient stay frozen whatever the phase says.
        refreeze = getattr(model, "freeze_unused_parameters", None)
        if callable(refreeze):
            refreeze()
        # A model from ``from_pretrained`` comes in eval mode, and Lightning keeps each
        # module's mode as it finds it: without this a loaded model would train with its
        # dropout off. Frozen parts train in train mode too, as in LLaVA's own recipe.
        model.train()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step}; lower the learning rate "
                "or check the data. The last saved checkpoint is kept."
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

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
