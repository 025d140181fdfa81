"""The Fuyu-driven filter (the paper's filter for generic data): a third-party judge of the
Fuyu architecture reads P(Yes) for "Is 'Question: q Answer: a' true for this image?".

On the built-in world the judge is a tiny Fuyu trained here on the judge split (its own
vision pretraining first, then yes/no verdicts, :mod:`genixer.filters.judge_data`);
``checkpoint`` loads a real one instead. Scoring runs on the sharded predict loop
(:mod:`genixer.filters.judge_scoring`): ``p_yes`` reads P(Yes) from the first answer
token's logits, deterministically; ``sampled`` is the original code's score.
"""

from __future__ import annotations

from pathlib import Path

from genixer.core.build import build
from genixer.core.record import Record
from genixer.filters.base import Filter, FilterEnv
from genixer.filters.judge_data import training_examples
from genixer.filters.judge_scoring import judge_records
from genixer.models.fuyu.model import JudgePatchFeatures, load_judge, save_judge
from genixer.models.fuyu.processor import JudgeProcessor
from genixer.models.tokenizer import tokenizer_at
from genixer.models.vision_pretrain import pretrain_patches
from genixer.models.weights import copy_checkpoint
from genixer.training.data import EncodedDataset
from genixer.training.fit import fit, seed_model_init


class FuyuFilter(Filter):
    train_stage = "train_judge"
    train_version = 3
    train_reads = {"world": "world", "collect": "collect"}

    def __init__(
        self,
        *,
        name: str,
        checkpoint: str | None,
        model: dict,
        train: dict,
        vision_pretrain: dict | None,
        score_mode: str,
        renormalize: bool,
        batch_size: int,
        band: list[float] | None,
        threshold: float | str | None,
    ):
        super().__init__(name=name, band=band, threshold=threshold)
        self.checkpoint = checkpoint
        self.model = model
        self.train_cfg = train
        self.vision_pretrain = vision_pretrain
        self.score_mode = score_mode
        self.renormalize = renormalize
        self.batch_size = batch_size

    def train_key(self, seed: int, trainer_key: dict) -> dict:
        return {
            "model": self.model,
            "train": self.train_cfg,
            "vision_pretrain": self.vision_pretrain,
            "seed": seed,
            "checkpoint": self.checkpoint,
            "trainer": trainer_key,
        }

    def train(self, env: FilterEnv, folder: Path) -> dict:
        if self.checkpoint:
            return copy_checkpoint(load_judge, save_judge, self.checkpoint, folder)
        seed_model_init(env.seed, "judge")
        model = build(self.model, tokenizer=env.tokenizer)
        processor = JudgeProcessor.for_model(model, env.tokenizer)
        info: dict = {}
        if self.vision_pretrain:
            info["vision_pretrain"] = self._pretrain_vision(env, model, processor, folder)
        fitted = fit(
            model,
            EncodedDataset(
                training_examples(self.train_cfg, env.splits["judge"], env.seed),
                processor.encode_turns,
                env.world,
            ),
            processor.collate,
            train=dict(self.train_cfg, trainable="all"),
            trainer_cfg=env.trainer,
            seed=env.seed + 2,
            log_dir=folder / "logs",
            checkpoint_every=env.checkpoint_every,
        )
        save_judge(model, folder / "model")
        return info | fitted

    def _pretrain_vision(self, env: FilterEnv, model, processor, folder: Path) -> dict:
        """The judge's own vision pretraining on the judge split (its images, never the
        generator's collection): patch embedding + first decoder layer name each patch."""
        v = self.vision_pretrain
        return pretrain_patches(
            JudgePatchFeatures(model, processor, int(v["layer"])),
            env.splits["judge"],
            world=env.world,
            to_pixels=processor.image_patches,
            spec=model.config,
            train=v,
            trainer_cfg=env.trainer,
            log_dir=folder / "vision_logs",
            seed=env.seed,
            factored=True,
        )

    def score_key(self, seed: int) -> dict:
        key = {"mode": self.score_mode, "renormalize": self.renormalize, "seed": seed}
        if self.score_mode == "p_yes":  # deterministic: the seed decides nothing
            key.pop("seed")
        else:  # sampled: each record seeded from (seed, record id), whatever its batch
            key["seeding"] = "per_record"
        return key

    def score(self, env: FilterEnv, trained: Path, records: list[Record], folder: Path) -> dict:
        model = load_judge(trained / "model")
        processor = JudgeProcessor.for_model(model, tokenizer_at(trained / "model", env.tokenizer))
        return judge_records(
            model,
            processor,
            records,
            env,
            folder,
            mode=self.score_mode,
            batch_size=self.batch_size,
            renormalize=self.renormalize,
            checkpoint=trained / "model",
        )
