"""The schema of the run config: one dataclass per config group, mirroring ``conf/``.

Fields have no defaults (the YAML files hold them all); a field marked ``optional()`` may be
left out of the YAML. ``check(path)`` holds the rules that span keys. The groups built from
``_target_`` (world, filter) pick their schema by their target (``WORLDS``, ``FILTERS``); a
target of your own is checked against its constructor's keywords.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    InterpolationResolutionError,
    InterpolationToMissingValueError,
    MissingMandatoryValue,
)

from genixer.config.check import (
    MISSING,
    at_least,
    check_node,
    check_targeted,
    check_trainer,
    fail,
    given,
    optional,
)
from genixer.config.filters import FILTERS
from genixer.config.models import Downstream, Generator, Task
from genixer.config.worlds import (
    WORLDS,
    CollectionWorldConfig,
    FolderWorldConfig,
    ShapesWorldConfig,
)

# The phases a run can stop after (``stop_after``), in order; every stage belongs to one.
PHASES = ("train_generator", "generate", "select", "export", "downstream")


# ------------------------------------------------------------------ the run
@dataclass(kw_only=True)
class Generate:
    per_image: int
    max_images: int | None
    batch_size: int
    shard_size: int
    num_workers: int
    backend: Literal["hf", "vllm"]
    sampler: Literal["cpu", "device"]
    compile: bool
    temperature: float
    question_temperature: float | None
    top_p: float | None
    max_new_tokens: int
    decontaminate: str | list[str | dict[str, str | None]] | None

    def check(self, path: str) -> None:
        for name in ("per_image", "max_images", "batch_size", "shard_size", "max_new_tokens"):
            at_least(f"{path}.{name}", getattr(self, name), 1)
        at_least(f"{path}.num_workers", self.num_workers, 0)
        at_least(f"{path}.temperature", self.temperature, 0.0)
        at_least(f"{path}.question_temperature", self.question_temperature, 0.0)
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            fail(f"{path}.top_p", f"must lie in (0, 1], got {self.top_p}")
        if self.backend == "vllm" and self.question_temperature is not None:
            fail(f"{path}.question_temperature", "is not supported by the vllm backend: null")
        if self.backend == "vllm" and (self.sampler != "cpu" or self.compile):
            key = "sampler" if self.sampler != "cpu" else "compile"
            fail(f"{path}.{key}", "the vllm backend samples and compiles by itself: leave it off")
        entries = (
            self.decontaminate if isinstance(self.decontaminate, list) else [self.decontaminate]
        )
        for i, entry in enumerate(e for e in entries if e):
            images = entry.get("images") if isinstance(entry, dict) else entry
            if not images or not Path(str(images)).expanduser().exists():
                fail(f"{path}.decontaminate[{i}]", f"no benchmark images at {images!r}")


@dataclass(kw_only=True)
class Dedup:
    same_image: bool
    corpus_max: int | None

    def check(self, path: str) -> None:
        at_least(f"{path}.corpus_max", self.corpus_max, 1)


@dataclass(kw_only=True)
class Select:
    fraction: float
    stratify: Literal["task", "kind"] | None

    def check(self, path: str) -> None:
        if not 0.0 < self.fraction <= 1.0:
            fail(f"{path}.fraction", f"must lie in (0, 1], got {self.fraction}")


@dataclass(kw_only=True)
class Export:
    formats: list[Literal["llava", "hf"]]

    def check(self, path: str) -> None:
        if "llava" not in self.formats:
            fail(f"{path}.formats", "must include llava: the downstream stage trains on it")
        if len(set(self.formats)) != len(self.formats):
            fail(f"{path}.formats", f"names a format twice: {self.formats}")


@dataclass(kw_only=True)
class Checkpointing:
    every_n_steps: int
    keep: bool

    def check(self, path: str) -> None:
        at_least(f"{path}.every_n_steps", self.every_n_steps, 0)


@dataclass(kw_only=True)
class Paths:
    root_dir: str
    cache_dir: str
    output_dir: str | None  # None outside Hydra's app (a run from Python)


@dataclass(kw_only=True)
class RunConfig:
    world: dict[str, Any]  # by its _target_ (WORLDS)
    generator: Generator
    task: Task
    filter: dict[str, Any]  # by its _target_ (FILTERS)
    downstream: Downstream
    trainer: dict[str, Any]  # Lightning Trainer keywords (its _target_'s)
    logger: dict[str, Any]  # a tracker's keywords, or empty (logger=none)
    paths: Paths
    seed: int
    stop_after: Literal[*PHASES] | None  # type: ignore[valid-type]
    generate: Generate
    dedup: Dedup
    select: Select
    export: Export
    checkpointing: Checkpointing
    paper: dict[str, Any] = optional()  # the paper experiments' local paths

    def check(self, path: str) -> None:
        self.world = check_targeted(self.world, WORLDS, "world")
        self.filter = check_targeted(self.filter, FILTERS, "filter")
        if getattr(self.filter, "needs_ground_truth", False) and not has_ground_truth(self.world):
            fail(
                "filter", f"filter={self.filter.name} needs a world with ground truth: world=shapes"
            )
        self.trainer = check_trainer(self.trainer, "trainer")
        if self.logger:
            self.logger = check_targeted(self.logger, {}, "logger")
        if given(self.generator, "family") == "hf" and self.generate.backend == "vllm":
            fail("generate.backend", "generator=hf generates with transformers here: hf")
        tasks = self.generator.collection.tasks
        if self.task.name != "generic" and self.task.name not in tasks:
            fail("task.name", f"{self.task.name} is not one of the generator's tasks {tasks}")
        if self.stop_after in (None, "downstream"):
            check_world_entries(self.world, self.downstream)


def check_world_entries(world: Any, downstream: Downstream) -> None:
    """The world's splits the downstream entries name must have images: a collection world
    (alone or under a folder pool) has only its ``collection`` split."""
    base = world.base if isinstance(world, FolderWorldConfig) else world
    if isinstance(base, ShapesWorldConfig):
        sizes = base.splits
    elif isinstance(base, CollectionWorldConfig):
        sizes = {"collection": 1}
    else:
        return  # a world of your own: its splits are known when it runs
    named = [
        (f"downstream.{key}[{i}].world", e.world)
        for key in ("pretrain_data", "finetune_data")
        for i, e in enumerate(getattr(downstream, key))
        if given(e, "world") is not None
    ]
    named += [
        (f"downstream.benchmarks[{i}]", "benchmark")
        for i, b in enumerate(downstream.benchmarks)
        if b.benchmark == "world"
    ]
    for key, split in named:
        if not sizes.get(split, 0):
            fail(key, f"this world has no {split!r} images: use file entries instead")


def check_config(cfg: DictConfig) -> Any:
    """The checked config as schema objects; raises :class:`ConfigError` naming the key."""
    node = _plain(cfg)
    node.pop("hydra", None)
    return check_node(node, RunConfig, "")


def _plain(node: Any) -> Any:
    """A resolved plain copy in which a required value (``???``, or an interpolation of one)
    reads ``???`` and a value that only resolves inside Hydra's app reads None."""
    if isinstance(node, DictConfig):
        return {k: _plain(_value(node, k)) for k in node}
    if OmegaConf.is_list(node):
        return [_plain(_value(node, i)) for i in range(len(node))]
    return node


def _value(node: Any, key: Any) -> Any:
    if OmegaConf.is_missing(node, key):
        return MISSING
    try:
        return node[key]
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        return MISSING
    except InterpolationResolutionError:
        return None


def has_ground_truth(world: Any) -> bool:
    """Whether a world's pool images come with scenes (the oracle's truth)."""
    return isinstance(world, ShapesWorldConfig)
