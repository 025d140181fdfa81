"""The schema of the run config: one dataclass per config group, mirroring ``conf/``.

Fields have no defaults (the YAML files hold them all); a field marked ``optional()`` may be
left out of the YAML. ``check(path)`` holds the rules that span keys. The groups built from
``_target_`` (world, filter) pick their schema by their target (:data:`WORLDS`,
:data:`FILTERS`); a target of your own is checked against its constructor's keywords.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hydra.utils import get_object

from genixer.config.check import at_least, check_node, fail, given, optional, within

TRAINABLE = Literal["all", "projector", "no_vision"]
TASKS = ("common", "adv", "mcvqa", "md", "rec", "reg", "pointqa", "qcbox", "rd")
SPLITS = ("collection", "pool", "judge", "downstream", "benchmark")
PHASES = ("train_generator", "generate", "select", "export", "downstream")


def known_tasks(path: str, names: list[str] | None, allowed=TASKS) -> None:
    bad = sorted(set(names or []) - set(allowed))
    if bad:
        fail(path, f"unknown task(s) {bad}; tasks: {list(allowed)}")


# ------------------------------------------------------------------ training phases
@dataclass(kw_only=True)
class PatchPretrain:
    """Vision pretraining of a patch encoder (the generator's tower, the judge's patches)."""

    steps: int
    batch_size: int
    lr: float

    def check(self, path: str) -> None:
        at_least(f"{path}.steps", self.steps, 0)
        at_least(f"{path}.batch_size", self.batch_size, 1)
        if self.lr <= 0:
            fail(f"{path}.lr", f"must be > 0, got {self.lr}")


@dataclass(kw_only=True)
class JudgePatchPretrain(PatchPretrain):
    layer: int  # the judge's decoder layer whose patch features are trained


@dataclass(kw_only=True)
class TrainPhase(PatchPretrain):
    """One Lightning fit; ``weight_decay`` / ``min_lr_ratio`` left out: the optimizer recipe's
    own (AdamW without decay, cosine down to 0.1 lr: InstructionTuningModule)."""

    warmup_ratio: float
    trainable: TRAINABLE
    weight_decay: float = optional()
    min_lr_ratio: float = optional()

    def check(self, path: str) -> None:
        super().check(path)
        within(f"{path}.warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        at_least(f"{path}.weight_decay", given(self, "weight_decay"), 0.0)
        within(f"{path}.min_lr_ratio", given(self, "min_lr_ratio"), 0.0, 1.0)


@dataclass(kw_only=True)
class GeneratorTrain(TrainPhase):
    plain_qa_share: float  # plain VQA kept in the generator's mix

    def check(self, path: str) -> None:
        super().check(path)
        if not 0.0 <= self.plain_qa_share < 1.0:
            fail(f"{path}.plain_qa_share", f"must lie in [0, 1), got {self.plain_qa_share}")


# ------------------------------------------------------------------ generator
@dataclass(kw_only=True)
class VlmSpec:
    """A LLaVA-architecture model (genixer.models.llava.model.build_vlm)."""

    image_size: int
    patch_size: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_intermediate: int
    projector_type: Literal["mlp2x_gelu", "linear"]
    vision_feature_layer: int
    vision_feature_select_strategy: Literal["default", "full"]
    vision_pos_init_std: float | None
    max_position_embeddings: int
    attn_implementation: str = optional()

    def check(self, path: str) -> None:
        if self.image_size % self.patch_size:
            fail(f"{path}.image_size", f"{self.image_size} is not a multiple of patch_size")
        for hidden, heads in (("vision_hidden", "vision_heads"), ("text_hidden", "text_heads")):
            if getattr(self, hidden) % getattr(self, heads):
                fail(f"{path}.{hidden}", f"must be divisible by {heads}")


@dataclass(kw_only=True)
class VlmModel:
    _target_: str
    spec: VlmSpec


@dataclass(kw_only=True)
class Collection:
    tasks: list[str]
    share: dict[str, float]  # samples per image and task
    tau: dict[str, float]  # each task's generic-instruction-only share
    tau_all: float | None  # the tau ablation's one knob: every task's tau
    plain_tasks: list[str] | None
    plain_per_task: int

    def check(self, path: str) -> None:
        known_tasks(f"{path}.tasks", self.tasks)
        for name in ("share", "tau"):  # entries of other tasks may be inherited: unused
            known_tasks(f"{path}.{name}", list(getattr(self, name)))
            missing = [t for t in self.tasks if t not in getattr(self, name)]
            if missing:
                fail(f"{path}.{name}", f"has no value for task(s) {missing}")
        for task, value in self.tau.items():
            within(f"{path}.tau.{task}", value, 0.0, 1.0)
        for task, value in self.share.items():
            at_least(f"{path}.share.{task}", value, 0.0)
        within(f"{path}.tau_all", self.tau_all, 0.0, 1.0)
        known_tasks(f"{path}.plain_tasks", self.plain_tasks)
        at_least(f"{path}.plain_per_task", self.plain_per_task, 1)


@dataclass(kw_only=True)
class Generator:
    name: str
    checkpoint: str | None  # a local model folder replaces the tiny model
    vocab_size: int
    temperature: float
    question_temperature: float | None
    max_new_tokens: int
    model: VlmModel
    collection: Collection
    vision_pretrain: PatchPretrain | None
    base_train: TrainPhase
    gen_train: GeneratorTrain


@dataclass(kw_only=True)
class Task:
    name: Literal["generic", *TASKS]  # type: ignore[valid-type]


# ------------------------------------------------------------------ filters
@dataclass(kw_only=True)
class FilterBase:
    _target_: str
    name: str
    band: list[float] | None  # keep lo <= score < hi
    threshold: float | str | None  # keep score >= threshold; "calibrated": the filter's own
    _recursive_: bool = optional()

    def check(self, path: str) -> None:
        if self.band is not None and (len(self.band) != 2 or self.band[0] >= self.band[1]):
            fail(f"{path}.band", f"must be [lo, hi] with lo < hi, got {self.band}")
        if isinstance(self.threshold, str) and self.threshold != "calibrated":
            fail(f"{path}.threshold", f"must be a number or 'calibrated', got {self.threshold!r}")


@dataclass(kw_only=True)
class NoFilterConfig(FilterBase):
    def check(self, path: str) -> None:
        for name in ("band", "threshold"):
            if getattr(self, name) is not None:
                fail(f"{path}.{name}", "filter=none scores nothing: band and threshold are null")


@dataclass(kw_only=True)
class JudgeSpec:
    image_size: int
    patch_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_position_embeddings: int


@dataclass(kw_only=True)
class JudgeModel:
    _target_: str
    spec: JudgeSpec


@dataclass(kw_only=True)
class JudgeTrain(TrainPhase):
    """The judge's fit (its ``trainable`` is always ``all``: it has no frozen tower)."""

    trainable: TRAINABLE = optional()
    items_per_image: int  # fresh question/answer draws per judge image
    hard_negatives: float
    vqa_per_image: int
    answerable: float
    explain: bool

    def check(self, path: str) -> None:
        super().check(path)
        at_least(f"{path}.items_per_image", self.items_per_image, 1)
        at_least(f"{path}.vqa_per_image", self.vqa_per_image, 0)
        within(f"{path}.hard_negatives", self.hard_negatives, 0.0, 1.0)
        within(f"{path}.answerable", self.answerable, 0.0, 1.0)


@dataclass(kw_only=True)
class FuyuFilterConfig(FilterBase):
    checkpoint: str | None
    model: JudgeModel
    train: JudgeTrain
    vision_pretrain: JudgePatchPretrain | None
    score_mode: Literal["p_yes", "sampled"]
    renormalize: bool
    batch_size: int

    def check(self, path: str) -> None:
        super().check(path)
        if self.threshold == "calibrated":
            fail(f"{path}.threshold", "the Fuyu judge has no calibrated threshold: give a number")
        at_least(f"{path}.batch_size", self.batch_size, 1)


@dataclass(kw_only=True)
class ClipModel:
    _target_: str
    spec: dict[str, int | bool]  # checked by genixer.models.clip when built


@dataclass(kw_only=True)
class ClipMargin:
    enabled: bool
    stride: float
    max_iou: float

    def check(self, path: str) -> None:
        if self.stride <= 0:
            fail(f"{path}.stride", f"must be > 0, got {self.stride}")
        if not 0.0 <= self.max_iou < 1.0:
            fail(f"{path}.max_iou", f"must lie in [0, 1), got {self.max_iou}")


@dataclass(kw_only=True)
class ClipFilterConfig(FilterBase):
    checkpoint: str | None
    model: ClipModel
    train: PatchPretrain  # contrastive: steps, batch_size, lr
    score_mode: Literal["cosine", "raw_dot"]
    margin: ClipMargin
    min_crop_px: int
    batch_size: int

    def check(self, path: str) -> None:
        super().check(path)
        if self.threshold == "calibrated" and self.margin.enabled:
            fail(
                f"{path}.threshold",
                "calibrated is a similarity; margin scores (filter.margin.enabled) need a "
                "margin threshold, e.g. 0: the box fits its expression best",
            )
        if self.threshold == "calibrated" and self.checkpoint:
            fail(f"{path}.threshold", "a checkpoint has no calibration: give a number")
        at_least(f"{path}.min_crop_px", self.min_crop_px, 1)
        at_least(f"{path}.batch_size", self.batch_size, 1)


FILTERS = {
    "genixer.filters.fuyu.FuyuFilter": FuyuFilterConfig,
    "genixer.filters.clip.ClipFilter": ClipFilterConfig,
    "genixer.filters.none.NoFilter": NoFilterConfig,
}


# ------------------------------------------------------------------ worlds
@dataclass(kw_only=True)
class ShapesWorldConfig:
    _target_: str
    seed: int
    image_size: int
    grid: int
    min_objects: int
    max_objects: int
    splits: dict[str, int]

    def check(self, path: str) -> None:
        bad = sorted(set(self.splits) - set(SPLITS))
        if bad:
            fail(f"{path}.splits", f"unknown split(s) {bad}; splits: {list(SPLITS)}")
        for name, n in self.splits.items():
            at_least(f"{path}.splits.{name}", n, 0)
        at_least(f"{path}.min_objects", self.min_objects, 0)
        if self.max_objects < self.min_objects or self.max_objects > self.grid**2:
            fail(
                f"{path}.max_objects", f"must lie in [min_objects, grid^2], got {self.max_objects}"
            )


@dataclass(kw_only=True)
class CollectionWorldConfig:
    _target_: str
    root: str
    seed: int
    tasks: list[str]
    size: int | None
    link: Literal["hardlink", "copy"]
    image_size: int
    box_tolerance_px: float
    datasets: dict[str, dict[str, Any]]  # checked by each converter when the world is built
    splits: dict[str, int] = optional()

    def check(self, path: str) -> None:
        known_tasks(f"{path}.tasks", self.tasks)
        if not Path(self.root).is_dir():
            fail(f"{path}.root", f"no data folder at {self.root}")


@dataclass(kw_only=True)
class FolderWorldConfig:
    _target_: str
    images: str
    image_root: str | None
    extensions: list[str]
    max_pixels: int | None
    link: Literal["hardlink", "copy"]
    workers: int
    image_size: int
    base: dict[str, Any]  # the labeled splits: another world (shapes or collection)

    def check(self, path: str) -> None:
        if not Path(self.images).exists():
            fail(f"{path}.images", f"no folder or image list at {self.images}")
        at_least(f"{path}.workers", self.workers, 0)
        self.base = check_targeted(self.base, WORLDS, f"{path}.base")


WORLDS = {
    "genixer.sources.shapes.ShapesWorld": ShapesWorldConfig,
    "genixer.sources.collection.CollectionWorld": CollectionWorldConfig,
    "genixer.sources.folder.FolderWorld": FolderWorldConfig,
}


def check_targeted(node: dict, registry: dict[str, type], path: str) -> Any:
    """A ``_target_`` node against its target's schema; a target of your own against the
    keywords its constructor takes."""
    target = node.get("_target_")
    if not isinstance(target, str):
        fail(f"{path}._target_", "is missing")
    if target in registry:
        return check_node(node, registry[target], path)
    try:
        params = inspect.signature(get_object(target)).parameters
    except (ImportError, AttributeError, ValueError) as err:
        fail(f"{path}._target_", f"cannot import {target!r}: {err}")
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in node if not k.startswith("_") and k not in params)
        if unknown:
            fail(", ".join(f"{path}.{k}" for k in unknown), f"{target} takes no such keyword")
    return node


# ------------------------------------------------------------------ downstream
@dataclass(kw_only=True)
class DownstreamEval:
    per_image: int
    batch_size: int
    max_new_tokens: int
    metric: Literal["vqa", "rec"]


@dataclass(kw_only=True)
class Downstream:
    seed: int
    model: VlmModel
    pretrain: list[TrainPhase]  # on the synthetic data, phase after phase
    finetune: TrainPhase  # on the small labeled set (both arms)
    eval: DownstreamEval
    small_set_tasks: list[str] | None

    def check(self, path: str) -> None:
        known_tasks(f"{path}.small_set_tasks", self.small_set_tasks)


# ------------------------------------------------------------------ the run
@dataclass(kw_only=True)
class Generate:
    per_image: int
    max_images: int | None
    batch_size: int
    shard_size: int
    num_workers: int
    backend: Literal["hf", "vllm"]
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

    def check(self, path: str) -> None:
        if not 0.0 < self.fraction <= 1.0:
            fail(f"{path}.fraction", f"must lie in (0, 1], got {self.fraction}")


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
    checkpointing: Checkpointing
    paper: dict[str, Any] = optional()  # the paper experiments' local paths

    def check(self, path: str) -> None:
        self.world = check_targeted(self.world, WORLDS, "world")
        self.filter = check_targeted(self.filter, FILTERS, "filter")
        self.trainer = check_trainer(self.trainer, "trainer")
        if self.logger:
            self.logger = check_targeted(self.logger, {}, "logger")
        tasks = self.generator.collection.tasks
        if self.task.name != "generic" and self.task.name not in tasks:
            fail("task.name", f"{self.task.name} is not one of the generator's tasks {tasks}")


def check_trainer(node: dict, path: str) -> dict:
    """Lightning Trainer keywords; a factory that passes ``**kwargs`` on to the Trainer
    (``make_trainer``) is checked against its own keywords plus the Trainer's."""
    target = node.get("_target_")
    check_targeted(node, {}, path)
    params = inspect.signature(get_object(target)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = set(params) | set(inspect.signature(get_object("lightning.Trainer")).parameters)
        unknown = sorted(k for k in node if not k.startswith("_") and k not in known)
        if unknown:
            fail(", ".join(f"{path}.{k}" for k in unknown), "no Trainer keyword of that name")
    return node
