"""Instruction data for Lightning: (image, conversation) examples encoded once (or read on
demand: :mod:`genixer.training.stream`), collated by the model's own processor; batches in
a seeded order, optionally grouped by length, that a resumed run replays."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset

from genixer.training.resume import ReplaySampler, ResumableLoader, batches_per_epoch
from genixer.world.base import WorldImage, load_image

log = logging.getLogger(__name__)

# An example is an image and what the model's encoder needs besides it: a conversation
# (list of turns) for the VLMs, a (prompt, answer) pair for the judge.
Example = tuple[WorldImage, object]


class EncodedDataset(Dataset):
    """Examples encoded up front (the built-in world is small); a too-long example is
    skipped, counted and logged, never cut."""

    def __init__(
        self,
        examples: Sequence[Example],
        encode: Callable[[object, object], dict],
        root: str | Path,
    ) -> None:
        self.items: list[dict] = []
        self.lengths: list[int] = []  # text characters: the cheap length of length grouping
        self.skipped: dict[str, int] = {}
        images: dict[str, object] = {}
        for img, payload in examples:
            if img.id not in images:
                images[img.id] = load_image(root, img)
            try:
                self.items.append(encode(images[img.id], payload))
                self.lengths.append(len(str(payload)))
            except ValueError as err:
                reason = "too_long" if "length" in str(err) else "encode_error"
                self.skipped[reason] = self.skipped.get(reason, 0) + 1
                log.warning("skipping training example of %s: %s", img.id, err)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class InstructionDataModule(L.LightningDataModule):
    def __init__(
        self,
        dataset: EncodedDataset,
        collate,
        batch_size: int = 32,
        seed: int = 0,
        group_by_length: bool = False,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.collate = collate
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length

    def train_dataloader(self) -> DataLoader:
        """Seeded shuffling that a restored run continues exactly where it stopped (see
        :mod:`genixer.training.resume`): the start follows the trainer's global step."""
        import torch

        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        n = len(self.dataset)
        drop_last = (n if world == 1 else n // world) > self.batch_size
        sampler = ReplaySampler(
            n,
            self.seed,
            rank=rank,
            world=world,
            batch_size=self.batch_size,
            drop_last=drop_last,
            lengths=list(self.dataset.lengths) if self.group_by_length else None,
        )
        if trainer is not None and trainer.global_step > 0:
            nb = batches_per_epoch(len(sampler), self.batch_size, drop_last)
            epoch, done = divmod(trainer.global_step, nb)
            sampler.start_at(epoch, done * self.batch_size)
        return ResumableLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=torch.Generator(),  # the loader's own draws leave the global RNG alone
            collate_fn=self.collate,
            drop_last=drop_last,
        )
