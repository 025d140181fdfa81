"""The schema of the models' groups: the generator (its architecture, its collection, its
training phases), the task, the downstream arms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genixer.config.check import at_least, fail, given, optional, within
from genixer.tasks import TASKS as TASK_CLASSES

TASKS = tuple(TASK_CLASSES)
TRAINABLE = Literal["all", "projector", "no_vision"]
# genixer: the project's LLaVA / Shikra architecture; hf: any transformers image-text-to-text
# chat model with its own processor (genixer.models.family).
FAMILY = Literal["genixer", "hf"]
TINY_HF = "python -m genixer.models.hf.tiny qwen2_vl /tmp/tiny-qwen2-vl"


def check_family(path: str, family: str, checkpoint: str | None, model) -> None:
    """The hf family takes everything from a model folder; the project's own needs a spec
    or a folder."""
    if family == "hf" and not checkpoint:
        fail(
            f"{path}.checkpoint",
            f"the hf family loads a local model folder (AutoModelForImageTextToText + its "
            f"processor): set it; a tiny one for the built-in world: {TINY_HF}",
        )
    if family == "hf" and model is not None:
        fail(f"{path}.model", "the hf family takes its architecture from the checkpoint: null")
    if family == "genixer" and model is None and not checkpoint:
        fail(f"{path}.model", "needs a tiny model spec or a checkpoint")


LABELED_SPLITS = ("downstream", "judge", "collection")


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
    group_by_length: bool = optional()  # batches of similar text lengths (LLaVA's recipe)

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
    model: VlmModel | None  # None: the architecture comes from the checkpoint
    collection: Collection
    vision_pretrain: PatchPretrain | None
    base_train: TrainPhase
    gen_train: GeneratorTrain
    family: FAMILY = optional()

    def check(self, path: str) -> None:
        check_family(path, given(self, "family") or "genixer", self.checkpoint, self.model)


@dataclass(kw_only=True)
class Task:
    name: Literal["generic", *TASKS]  # type: ignore[valid-type]


# ------------------------------------------------------------------ downstream
@dataclass(kw_only=True)
class DownstreamEval:
    per_image: int
    batch_size: int
    max_new_tokens: int
    metric: Literal["vqa", "rec"]


@dataclass(kw_only=True)
class DataEntry:
    """One source of downstream training data (``downstream.pretrain_data`` /
    ``finetune_data``): the world's labeled split, the run's export (the synthetic arm only),
    or a LLaVA-format training file with its image folder; all of it (file order), a seeded
    ``ratio`` (2 = each record twice) or a seeded ``count``."""

    world: str = optional()  # a labeled split of the world: downstream
    export: bool = optional()  # the run's exported synthetic data
    file: str = optional()  # a LLaVA-format training JSON (or JSON lines)
    images: str = optional()  # what the file's ``image`` paths are relative to
    ratio: float = optional()
    count: int = optional()
    arm: Literal["baseline", "synthetic"] = optional()  # only this arm (export: synthetic)

    def check(self, path: str) -> None:
        sources = [k for k in ("world", "export", "file") if given(self, k) is not None]
        if len(sources) != 1:
            fail(path, f"needs exactly one of world, export, file; got {sources or 'none'}")
        if given(self, "export") is False:
            fail(f"{path}.export", "leave the entry out instead of export: false")
        if given(self, "world") is not None and self.world not in LABELED_SPLITS:
            fail(f"{path}.world", f"must be one of {list(LABELED_SPLITS)}, got {self.world!r}")
        if given(self, "ratio") is not None and given(self, "count") is not None:
            fail(path, "give ratio or count, not both")
        at_least(f"{path}.ratio", given(self, "ratio"), 0.0)
        at_least(f"{path}.count", given(self, "count"), 0)
        if given(self, "file") is not None:
            check_llava_file(f"{path}.file", self.file)
            if given(self, "images") is None or not Path(self.images).is_dir():
                fail(f"{path}.images", f"no image folder at {given(self, 'images')!r}")
        elif given(self, "images") is not None:
            fail(f"{path}.images", "only a file entry takes an image folder")


def check_llava_file(path: str, file: str) -> None:
    """A LLaVA training file: a JSON array (or JSON lines) whose first record is a
    conversation entry. Its other records are checked as they are indexed (ledgered)."""
    from genixer.training.stream import BadFileError, scan_records

    if not Path(file).is_file():
        fail(path, f"no file at {file}")
    try:
        first = next(iter(scan_records(file)), None)
    except OSError as err:
        fail(path, f"{file} cannot be read: {err}")
    value = first[2] if first else None
    if isinstance(value, BadFileError):
        fail(path, f"{file} is not JSON: {value}")
    if not isinstance(value, dict) or not isinstance(value.get("conversations"), list):
        fail(
            path,
            f"{file} is not LLaVA's training format (a list of {{id, image, conversations: "
            "[{from: human, value}, {from: gpt, value}, ...]}}): its first record is "
            f"{str(value)[:80]!r}",
        )


@dataclass(kw_only=True)
class BenchmarkEntry:
    """A benchmark both arms answer: ``world`` (the built-in world's held-out split, scored
    as ``downstream.eval`` says) or one of ``python -m genixer.evaluate``'s loaders on its own
    released files (``annotations``), its images under ``images``."""

    benchmark: str
    name: str = optional()  # its key under summary.json's downstream.benchmarks
    annotations: list[str] = optional()
    images: str = optional()
    split: str = optional()  # ScienceQA's split (test)
    box_frame: Literal["original", "padded"] = optional()  # REC: the frame of the boxes
    max_questions: int = optional()  # a seeded subset
    max_new_tokens: int = optional()  # else downstream.eval's

    def check(self, path: str) -> None:
        from genixer.evaluation.benchmarks import BENCHMARKS

        if self.benchmark != "world" and self.benchmark not in BENCHMARKS:
            fail(
                f"{path}.benchmark",
                f"no loader {self.benchmark!r}; one of world, {', '.join(sorted(BENCHMARKS))}",
            )
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.label):
            fail(f"{path}.name", f"{self.label!r}: letters, digits, _ and - only (a metric key)")
        files = given(self, "annotations")
        if self.benchmark == "world":
            if files is not None or given(self, "images") is not None:
                fail(path, "the world's benchmark takes no annotations or images")
            return
        if not files:
            fail(
                f"{path}.annotations", f"{self.benchmark} needs {BENCHMARKS[self.benchmark].files}"
            )
        for i, f in enumerate(files):
            if not Path(f).is_file():
                fail(f"{path}.annotations[{i}]", f"no file at {f}")
        images = given(self, "images")
        if self.benchmark != "mmbench" and (images is None or not Path(images).is_dir()):
            fail(f"{path}.images", f"no image folder at {images!r}")
        at_least(f"{path}.max_questions", given(self, "max_questions"), 1)
        at_least(f"{path}.max_new_tokens", given(self, "max_new_tokens"), 1)

    @property
    def label(self) -> str:
        return given(self, "name") or self.benchmark


@dataclass(kw_only=True)
class Downstream:
    seed: int
    model: VlmModel | None  # None: the architecture comes from the checkpoint (hf family)
    checkpoint: str | None  # a converted LLaVA-1.5 / Shikra folder (its LM and vision
    # tower), or with family hf any transformers image-text-to-text chat model folder
    fresh_projector: bool  # with a checkpoint: a new projector (LLaVA-1.5's stage 1 start)
    baseline: bool  # false: no baseline arm (no gains)
    pretrain: list[TrainPhase]  # on pretrain_data, phase after phase
    finetune: TrainPhase  # on finetune_data (both arms)
    pretrain_data: list[DataEntry]
    finetune_data: list[DataEntry]
    benchmarks: list[BenchmarkEntry]
    eval: DownstreamEval
    small_set_tasks: list[str] | None
    family: FAMILY = optional()

    def check(self, path: str) -> None:
        known_tasks(f"{path}.small_set_tasks", self.small_set_tasks)
        check_family(path, given(self, "family") or "genixer", self.checkpoint, self.model)
        if self.checkpoint is not None and not (Path(self.checkpoint) / "config.json").is_file():
            fail(f"{path}.checkpoint", f"no model folder (config.json) at {self.checkpoint}")
        if not self.benchmarks:
            fail(f"{path}.benchmarks", "needs at least one benchmark")
        labels = [b.label for b in self.benchmarks]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            fail(f"{path}.benchmarks", f"names {twice} twice: give each entry its own name")
