"""Exact resume of a training run, and checkpoints that are never bad.

A killed (or NaN-stopped) training run re-run with the same config resumes from its last
checkpoint (``<log_dir>/checkpoints/last.ckpt``: model, optimizer, schedule, loop state)
and ends with the same weights as a run that was never interrupted:

- :class:`ReplaySampler` gives the batches of ``DataLoader(shuffle=True, generator=
  torch.Generator().manual_seed(seed))``, epoch after epoch, in exactly that order, but it
  can start anywhere: epoch ``e``'s permutation is replayed from the seed, and the batches
  already trained in that epoch are skipped. Where to start comes from the restored
  ``global_step`` (one optimizer step per batch).
- :class:`ResumableLoader` marks the loader as resumable for Lightning (so it expects the
  rest of the epoch, not a fresh one); its position lives in the trainer's step count.
- :class:`FiniteCheckpoint` saves ``last.ckpt`` every ``every_n_steps`` steps, atomically
  (Lightning writes through a temp file), and never when a weight is NaN or inf: the last
  checkpoint on disk is always a good one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Sampler

log = logging.getLogger(__name__)

LAST = "last.ckpt"


class ReplaySampler(Sampler[int]):
    """Shuffled indices, one permutation per epoch, the same as a seeded ``RandomSampler``
    inside a ``DataLoader``; ``rank``/``world`` take every ``world``-th index (DDP)."""

    def __init__(
        self,
        n: int,
        seed: int,
        *,
        rank: int = 0,
        world: int = 1,
        batch_size: int = 1,
        drop_last: bool = False,
        lengths: list[int] | None = None,
    ) -> None:
        if n < 1:
            raise ValueError("no examples to sample")
        self.n = n
        self.seed = int(seed)
        self.rank = rank
        self.world = world
        self.batch_size = batch_size
        self.lengths = lengths  # given: batches of similar lengths (length_grouped)
        # A seeded RandomSampler run to its end draws one more (empty) permutation; it runs
        # to its end only when the epoch's last batch is a partial one.
        self.exhausts = not drop_last and len(self) % batch_size != 0
        self.epoch = 0  # the epoch the next iteration yields
        self.skip = 0  # indices of that epoch already trained

    def permutation(self, epoch: int) -> list[int]:
        # What the DataLoader draws from its generator, per epoch: its workers' base seed
        # when the iterator is made, then the permutation (and the empty remainder's).
        g = torch.Generator().manual_seed(self.seed)
        for e in range(epoch + 1):
            torch.empty((), dtype=torch.int64).random_(generator=g)
            perm = torch.randperm(self.n, generator=g)
            if e < epoch and self.exhausts:
                torch.randperm(self.n, generator=g)
        order = perm.tolist()
        if self.lengths is not None:
            group = self.batch_size * self.world
            order = length_grouped(order, self.lengths, group, self.seed * 1009 + epoch)
        if self.world > 1:
            order = order[self.rank :: self.world][: self.n // self.world]
        return order

    def start_at(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        epoch, skip = self.epoch, self.skip
        self.epoch, self.skip = epoch + 1, 0
        yield from self.permutation(epoch)[skip:]

    def __len__(self) -> int:
        return self.n if self.world == 1 else self.n // self.world


MEGA_BATCHES = 50  # batches sorted together by length (as transformers' grouping does)


def length_grouped(order: list[int], lengths, group: int, seed: int) -> list[int]:
    """``order`` rearranged so that each run of ``group`` indices (one step's batches, all
    ranks) holds examples of similar length: mega-batches of up to 50 steps are sorted by
    length, the steps then shuffled with ``seed`` (the longest first, so memory runs out at
    once if it will). The idea of LLaVA's ``group_by_modality_length``; a pure function of
    its arguments, so a resumed run replays it."""
    mega = group * max(1, min(MEGA_BATCHES, len(order) // (group * 4) or 1))
    steps: list[list[int]] = []
    for start in range(0, len(order), mega):
        block = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        steps.extend(block[k : k + group] for k in range(0, len(block), group))
    if len(steps) < 2:
        return [i for s in steps for i in s]
    g = torch.Generator().manual_seed(int(seed))
    full = [k for k in range(len(steps)) if len(steps[k]) == group]
    # a partial step (the epoch's end) stays last, where a DataLoader drops or shortens it
    tail = [k for k in range(len(steps)) if len(steps[k]) < group]
    if full:
        longest = max(full, key=lambda k: lengths[steps[k][0]])
        rest = [k for k in full if k != longest]
        full = [longest] + [rest[int(k)] for k in torch.randperm(len(rest), generator=g)]
    ordered = full + tail
    return [i for k in ordered for i in steps[k]]


class ResumableLoader(DataLoader):
    """A DataLoader Lightning treats as resumable (it has ``state_dict``): after a mid-epoch
    restore it takes the remaining batches of the epoch as the epoch's rest."""

    def state_dict(self) -> dict:
        sampler = self.sampler
        return {"epoch": getattr(sampler, "epoch", 0)}

    def load_state_dict(self, state: dict) -> None:
        """The position is set from the restored global step (see ``InstructionDataModule``)."""


def batches_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def nonfinite_parameters(module: torch.nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters() if not torch.isfinite(p).all()]


class FiniteCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_steps`` steps (and at the end), never with bad weights."""

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        super().__init__(
            dirpath=str(dirpath),
            save_top_k=0,
            save_last=True,
            every_n_train_steps=int(every_n_steps),
            save_on_train_epoch_end=False,
            enable_version_counter=False,
        )

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        bad = nonfinite_parameters(trainer.lightning_module)
        if bad:
            log.warning(
                "not saving a checkpoint at step %d: %d parameters are NaN/inf (%s...); "
                "the last good checkpoint stays",
                trainer.global_step,
                len(bad),
                bad[0],
            )
            return
        super()._save_checkpoint(trainer, filepath)


def last_checkpoint(log_dir: str | Path) -> Path | None:
    """``<log_dir>/checkpoints/last.ckpt`` when it exists and loads, else None (a file that
    does not load is moved aside, and training starts over)."""
    path = Path(log_dir) / "checkpoints" / LAST
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        step = int(state["global_step"])
    except Exception as err:  # noqa: BLE001 - any unreadable file means: start over
        bad = path.with_suffix(".ckpt.bad")
        path.replace(bad)
        log.warning("checkpoint %s does not load (%s); moved to %s, starting over", path, err, bad)
        return None
    log.info("resuming from %s (step %d)", path, step)
    return path


def checkpoint_step(path: str | Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def drop_checkpoints(folder: str | Path) -> int:
    """Remove the ``checkpoints/`` folders under a finished stage's folder; returns how many."""
    import shutil

    found = [p for p in Path(folder).rglob("checkpoints") if p.is_dir()]
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return len(found)
