"""Training progress in the run's log: step, loss, rate and ETA, whether or not a terminal
shows Lightning's progress bar (logs of batch jobs need it most)."""

from __future__ import annotations

import logging
import time

import lightning as L

log = logging.getLogger("genixer.train")


class ProgressLog(L.Callback):
    def __init__(self, name: str = "train", every_s: float = 15.0) -> None:
        self.name = name
        self.every_s = every_s
        self.start = self.last = 0.0
        self.steps = 0
        self.tokens = 0
        self.examples = 0
        self.first = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self.last = time.perf_counter()
        self.first = self.steps = trainer.global_step  # > 0 when resumed from a checkpoint

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps = trainer.global_step
        self.tokens += int(batch["attention_mask"].sum())
        self.examples += int(batch["attention_mask"].shape[0])
        now = time.perf_counter()
        if now - self.last < self.every_s and self.steps < trainer.max_steps:
            return
        self.last = now
        rate = self.rate() or 0.0
        eta = (trainer.max_steps - self.steps) / rate if rate else float("nan")
        loss = trainer.callback_metrics.get("train/loss")
        loss = float(loss) if loss is not None else float("nan")
        log.info(
            f"{self.name} step {self.steps}/{trainer.max_steps} loss {loss:.4f} | "
            f"{rate:.2f} steps/s, {self.token_rate() or 0.0:.0f} tokens/s, ETA {eta:.0f}s"
        )

    def rate(self) -> float | None:
        elapsed = time.perf_counter() - self.start
        done = self.steps - self.first
        return round(done / elapsed, 3) if done and elapsed > 0 else None

    def seconds(self) -> float:
        """Time since training started (0 before it did)."""
        return time.perf_counter() - self.start if self.start else 0.0

    def example_rate(self) -> float | None:
        """Training examples (images) per second."""
        elapsed = time.perf_counter() - self.start
        return round(self.examples / elapsed, 1) if self.examples and elapsed > 0 else None

    def token_rate(self) -> float | None:
        elapsed = time.perf_counter() - self.start
        return round(self.tokens / elapsed, 1) if self.tokens and elapsed > 0 else None
