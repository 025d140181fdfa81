"""Sharded inference through Lightning's predict loop, on any number of processes.

``run_sharded`` takes a model, a :class:`Predictor` and requests with stable ids. The
requests are hashed into shards (:mod:`genixer.training.shards`); process ``rank`` of
``world`` runs the shards ``k % world == rank`` whose file is not on disk yet, in batches
that never cross a shard, and writes each shard whole (atomically) as soon as its last
batch is done. Then the shards are merged, after a check that every request id is there
exactly once, into one file sorted by id. Killing the job at any moment loses at most the
shards in flight; running it again redoes only those.

Processes: ``trainer.devices`` x ``trainer.num_nodes``. Started from one plain process (a
laptop, one node) several devices run as ``ddp_spawn`` children and the merge happens in
the parent; under an external launcher (Slurm ``srun``, ``torchrun``) every process runs
its own shards, waits for the others at a barrier, and global rank 0 merges.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from genixer.core.build import build
from genixer.training.shards import ShardPlan, read_rows

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """What a sharded job does with a batch of requests. Must pickle (``ddp_spawn``,
    DataLoader workers): plain attributes, no lambdas."""

    def prepare(self, requests: list[dict]) -> Any:
        """Runs in the data loader (workers, if any): load images, encode."""

    def predict(self, model: torch.nn.Module, payload: Any, requests: list[dict]) -> list[dict]:
        """Runs in the predict step: one output row per request, each with its ``id``."""


class _ShardBatches(Dataset):
    """Batches of this process's pending shards; a batch never crosses a shard."""

    def __init__(self, items: list[tuple[int, bool, list[dict]]], predictor: Predictor) -> None:
        self.items = items
        self.predictor = predictor

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        shard, last, reqs = self.items[i]
        return {
            "shard": shard,
            "last": last,
            "requests": reqs,
            "payload": self.predictor.prepare(reqs),
        }


def _identity(batch):
    return batch


class _ShardData(L.LightningDataModule):
    def __init__(
        self,
        plan: ShardPlan,
        by_id: dict[str, dict],
        predictor: Predictor,
        batch_size: int,
        num_workers: int,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.by_id = by_id
        self.predictor = predictor
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.total = 0

    def predict_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        items = []
        for k in self.plan.pending(rank, world):
            reqs = [self.by_id[rid] for rid in self.plan.members[k]]
            starts = range(0, len(reqs), self.batch_size)
            for s in starts:
                items.append((k, s == starts[-1], reqs[s : s + self.batch_size]))
        self.total = sum(len(it[2]) for it in items)
        return DataLoader(
            _ShardBatches(items, self.predictor),
            batch_size=None,  # the dataset hands out whole batches
            collate_fn=_identity,
            num_workers=self.num_workers,
        )


class _PredictModule(L.LightningModule):
    """The model, or a loader that makes it in each process (``configure_model`` runs in
    every spawned process before the model goes to its device)."""

    def __init__(
        self, model: torch.nn.Module | None, predictor: Predictor, load_model=None
    ) -> None:
        super().__init__()
        self.model = model
        self.predictor = predictor
        self.load_model = load_model
        param = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
        self._home = param.device if param is not None else None

    def cpu(self):
        # Lightning's teardown moves the module to the CPU. A caller's model goes back where
        # the caller had it instead: a GPU model stays put (no 14 GB round trip per call for
        # a 7B model), and a CPU model the trainer moved to a GPU comes back to the CPU.
        if self._home is None:
            return super().cpu()
        return self.to(self._home)

    def configure_model(self) -> None:
        if self.model is None:
            self.model = self.load_model()

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        return self.predictor.predict(self.model, batch["payload"], batch["requests"])


class _ShardWriter(L.Callback):
    """Buffers a shard's rows and writes the shard (atomically) after its last batch."""

    def __init__(self, plan: ShardPlan) -> None:
        self.plan = plan
        self.buffer: dict[int, list[dict]] = {}

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, *_):
        rows = self.buffer.setdefault(batch["shard"], [])
        rows.extend(outputs)
        if batch["last"]:
            self.plan.write_shard(batch["shard"], self.buffer.pop(batch["shard"]))


class PredictProgress(L.Callback):
    """Rate and ETA of a predict loop in the log (batch jobs have no terminal for a bar):
    requests/s (images/s), new tokens/s when rows carry ``new_tokens``."""

    def __init__(self, name: str, every_s: float = 15.0) -> None:
        self.name = name
        self.every_s = every_s
        self.start = self.last = 0.0
        self.done = self.tokens = 0
        self.total = 0

    def on_predict_start(self, trainer, pl_module) -> None:
        self.start = self.last = time.perf_counter()
        self.total = getattr(trainer.datamodule, "total", 0)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, *_):
        self.done += len(outputs)
        self.tokens += sum(int(r.get("new_tokens", 0)) for r in outputs)
        now = time.perf_counter()
        if now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        elapsed = max(1e-9, now - self.start)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else float("nan")
        log.info(
            f"{self.name} rank {trainer.global_rank}: {self.done}/{self.total} | "
            f"{rate:.1f} images/s, {self.tokens / elapsed:.0f} tokens/s, ETA {eta:.0f}s"
        )


def _device_of(model) -> dict:
    """Trainer placement for a model given without a trainer config: where it already is."""
    param = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    if param is not None and param.device.type == "cuda":
        return {"accelerator": "gpu", "devices": [param.device.index or 0]}
    return {"accelerator": "cpu", "devices": 1}


def _trainer(trainer_cfg, callbacks: list, strategy: str | None, model=None) -> L.Trainer:
    kwargs: dict[str, Any] = {
        "callbacks": callbacks,
        "logger": False,
        "enable_checkpointing": False,
        "use_distributed_sampler": False,  # shards are assigned by id, not by a sampler
    }
    if strategy is not None:
        kwargs["strategy"] = strategy
    if trainer_cfg is None:
        return L.Trainer(**_device_of(model), enable_progress_bar=False, **kwargs)
    return build(trainer_cfg, **kwargs)


def make_trainer(trainer_cfg, callbacks: list, model=None) -> L.Trainer:
    """A predict trainer for ``trainer_cfg``'s devices and nodes: one process as is; several
    as ``ddp`` under an external launcher, else as ``ddp_spawn`` children of this process.
    Without a config: one process on the device ``model`` is on."""
    # "auto", not the config's training strategy (DeepSpeed shards optimizers; predict needs
    # a plain model per process).
    trainer = _trainer(trainer_cfg, callbacks, "auto", model)
    if trainer.num_devices * trainer.num_nodes <= 1:
        return trainer
    probe = _trainer(trainer_cfg, [], "ddp")
    external = probe.strategy.cluster_environment.creates_processes_externally
    return _trainer(trainer_cfg, callbacks, "ddp" if external else "ddp_spawn")


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _is_rank_zero() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


def run_sharded(
    model: torch.nn.Module | None,
    predictor: Predictor,
    requests: list[dict],
    *,
    folder: str | Path,
    out_name: str,
    batch_size: int,
    shard_size: int,
    trainer_cfg=None,
    num_workers: int = 0,
    name: str = "predict",
    load_model=None,
) -> dict:
    """Run ``predictor`` over ``requests`` into ``<folder>/raw/shard-*.jsonl``, merge them
    into ``<folder>/<out_name>`` (sorted by id) and return counts and rates.

    Request dicts need a unique ``id``. Shards already on disk are kept (resume).
    ``load_model`` (a picklable zero-argument callable, e.g. ``partial(load_vlm, path)``)
    makes the model in each process when several run; one process uses ``model`` if given.
    """
    if model is None and load_model is None:
        raise ValueError("run_sharded needs a model or a load_model callable")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    folder = Path(folder)
    plan = ShardPlan([r["id"] for r in requests], shard_size, folder)
    plan.clean_temp_files()
    pending = plan.pending()
    n_pending = sum(len(plan.members[k]) for k in pending)
    nonempty = sum(1 for m in plan.members.values() if m)
    start = time.perf_counter()
    processes = 1
    if pending:
        progress = PredictProgress(name)
        trainer = make_trainer(trainer_cfg, [_ShardWriter(plan), progress], model)
        processes = trainer.world_size
        data = _ShardData(plan, {r["id"]: r for r in requests}, predictor, batch_size, num_workers)
        trainer.predict(
            _module(model, predictor, load_model, processes),
            datamodule=data,
            return_predictions=False,
        )
        _barrier()  # under an external launcher: every rank's shards are on disk
    seconds = time.perf_counter() - start
    rows = _merged_rows(plan, folder / out_name)
    new_ids = {rid for k in pending for rid in plan.members[k]}
    tokens = sum(int(r.get("new_tokens", 0)) for r in rows if r["id"] in new_ids)
    return {
        "shards": nonempty,
        "shards_resumed": nonempty - len(pending),
        "generated": n_pending,
        "processes": processes,
        "seconds": round(seconds, 3),
        "images_per_s": round(n_pending / seconds, 2) if n_pending else None,
        "tokens_per_s": round(tokens / seconds, 1) if tokens else None,
    }


def _module(model, predictor: Predictor, load_model, processes: int) -> _PredictModule:
    """The predict module: each process loads its own model when several run (a model in
    memory does not pickle once transformers has hooked it), else the caller's model."""
    if load_model is not None and (model is None or processes > 1):
        return _PredictModule(None, predictor, load_model)
    return _PredictModule(model, predictor)


def _merged_rows(plan: ShardPlan, out: Path) -> list[dict]:
    """Rank 0 merges the shards (completeness-checked, sorted by id); every rank reads them."""
    rows = plan.merge(out) if _is_rank_zero() else None
    _barrier()
    return rows if rows is not None else read_rows(out)
