"""The schema of the models' groups: the generator (its architecture, its collection, its
training phases), the task, the downstream arms."""

from __future__ import annotations

from dataclasses import dataclass
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
class Downstream:
    seed: int
    model: VlmModel | None  # None: the architecture comes from the checkpoint
    pretrain: list[TrainPhase]  # on the synthetic data, phase after phase
    finetune: TrainPhase  # on the small labeled set (both arms)
    eval: DownstreamEval
    small_set_tasks: list[str] | None
    family: FAMILY = optional()
    checkpoint: str | None = optional()  # the hf family's starting model folder

    def check(self, path: str) -> None:
        known_tasks(f"{path}.small_set_tasks", self.small_set_tasks)
        family = given(self, "family") or "genixer"
        check_family(path, family, given(self, "checkpoint"), self.model)
