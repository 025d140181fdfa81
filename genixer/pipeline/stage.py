"""What a stage is, and the run context every stage reads.

A stage is one module under :mod:`genixer.pipeline.stages` with one :class:`Stage` subclass:
its name and version (both in the cache key), the stages it reads (``reads``: the input's
name in the key -> the stage that made it; ``uses``: folders it also opens whose keys its
``reads`` already cover, e.g. the world behind the collection), its cache key from the config (``key``; None when
the stage is not part of this configuration), what it does (``run``: inputs and an empty
folder in, the counts for its manifest out) and its part of ``summary.json``
(``summarize``). Stages never share mutable state: everything a stage needs is in the
:class:`RunContext` (config, cache, filter) or in the folders of the stages it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig

from genixer.core.build import to_plain
from genixer.pipeline.cache import StageCache, StageResult

Inputs = Mapping[str, StageResult]  # an input's name in the key -> its stage's result


@dataclass(frozen=True)
class RunContext:
    """One run's read-only context: the checked config, the stage cache, the filter."""

    cfg: DictConfig
    cache: StageCache
    filter: Any  # a genixer.filters.base.Filter, built from cfg.filter

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @property
    def checkpoint_every(self) -> int:
        """``checkpointing.every_n_steps``: how often training stages save ``last.ckpt``, so
        that a re-run of an interrupted stage resumes from it (0: never)."""
        return int(self.cfg.checkpointing.every_n_steps or 0)

    def trainer_key(self) -> dict:
        """What of ``trainer`` changes a training stage's result (not its speed)."""
        t = to_plain(self.cfg.trainer)
        return {k: t.get(k) for k in ("precision", "accelerator", "devices", "num_nodes")}


class Stage:
    """One step of the pipeline; see the module docstring for the contract."""

    name: ClassVar[str]
    version: ClassVar[int]
    phase: ClassVar[str]  # the ``stop_after`` value that ends the run after this stage's group
    reads: Mapping[str, str] = {}
    uses: Mapping[str, str] = {}

    def key(self, ctx: RunContext) -> dict | None:
        """The config that decides this stage's output; None: not part of this run."""
        raise NotImplementedError

    def check(self, ctx: RunContext) -> None:
        """Refuse, before any stage runs, what this stage would fail on (a model folder it
        cannot load, ...), with the reason and what to do."""

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        raise NotImplementedError

    def summarize(self, ctx: RunContext, results: Mapping[str, StageResult]) -> dict:
        """This stage's part of ``summary.json`` (merged into the blocks of the others)."""
        return {}
