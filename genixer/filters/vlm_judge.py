"""Any transformers vision-language chat model as the third-party judge (``filter=vlm_judge``):
the paper's yes/no question (:data:`genixer.tasks.templates.JUDGE_PROMPT`, the Fuyu judge's
too) put through the model's own chat template, P(Yes) read from the first answer token's
logits summed over every single-token spelling of "Yes" (against those of "No"), batched
and deterministic on the sharded runner (:mod:`genixer.filters.judge_scoring`).

``train`` (null by default: a real checkpoint judges as it is) fine-tunes the checkpoint on
the judge split's verdicts first, as the tiny Fuyu judge is trained
(:mod:`genixer.filters.judge_data`).
"""

from __future__ import annotations

from pathlib import Path

from genixer.core.build import to_plain
from genixer.core.record import Record
from genixer.filters.base import Filter, FilterEnv
from genixer.filters.judge_data import training_examples
from genixer.filters.judge_scoring import judge_records
from genixer.models.family import FAMILIES
from genixer.training.data import EncodedDataset
from genixer.training.fit import fit

HF = FAMILIES["hf"]


class VlmJudgeFilter(Filter):
    train_stage = "train_vlm_judge"
    train_reads = {"world": "world"}

    def __init__(
        self,
        *,
        name: str,
        checkpoint: str,
        train: dict | None,
        renormalize: bool,
        batch_size: int,
        band: list[float] | None,
        threshold: float | None,
    ):
        super().__init__(name=name, band=band, threshold=threshold)
        self.checkpoint = checkpoint
        self.train_cfg = to_plain(train) if train else None
        self.renormalize = renormalize
        self.batch_size = batch_size

    def check(self) -> None:
        HF.check(self.checkpoint)

    def train_key(self, seed: int, trainer_key: dict) -> dict:
        key = {"checkpoint": self.checkpoint, "train": self.train_cfg}
        return key | ({"seed": seed, "trainer": trainer_key} if self.train_cfg else {})

    def train(self, env: FilterEnv, folder: Path) -> dict:
        info = HF.copy(self.checkpoint, folder)
        if not self.train_cfg:
            return info
        model = HF.load(folder / "model")
        processor = HF.processor(model, folder / "model")
        examples = training_examples(self.train_cfg, env.splits["judge"], env.seed)
        fitted = fit(
            model,
            EncodedDataset(examples, processor.encode, env.world),
            processor.collate,
            train=dict(self.train_cfg) | {"trainable": self.train_cfg.get("trainable", "all")},
            trainer_cfg=env.trainer,
            seed=env.seed + 2,
            log_dir=folder / "logs",
            checkpoint_every=env.checkpoint_every,
        )
        HF.save(model, processor, folder / "model")
        return info | fitted

    def score_key(self, seed: int) -> dict:
        return {"mode": "p_yes", "renormalize": self.renormalize, "judge": "chat_template"}

    def score(self, env: FilterEnv, trained: Path, records: list[Record], folder: Path) -> dict:
        model = HF.load(trained / "model")
        processor = HF.processor(model, trained / "model")
        return judge_records(
            model,
            processor,
            records,
            env,
            folder,
            mode="p_yes",
            batch_size=self.batch_size,
            renormalize=self.renormalize,
            checkpoint=trained / "model",
            load=HF.load,
        )
