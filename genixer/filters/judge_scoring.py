"""Judge scoring on the sharded runner (:mod:`genixer.training.predict`): the same processes,
shards, resume and completeness-checked merge as generation, and the same progress (rate,
ETA) and accounting (records/s, ``images_per_s``).

A record's score is the minimum over its pairs (a dialogue is as true as its least credible
pair). ``p_yes`` reads P(Yes) from one forward pass per batch; ``sampled`` (the original
code's score) seeds each record from ``(seed, record id)``, so a record's score does not
depend on which batch, shard or process it lands in.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from genixer.core.record import Record, stable_seed
from genixer.filters.base import SCORES, read_scores, score_quality
from genixer.models.fuyu.model import load_judge
from genixer.models.fuyu.scoring import sampled_score
from genixer.models.judging import yes_probability
from genixer.tasks import get_task
from genixer.training.predict import run_sharded
from genixer.world.base import load_image

MODES = ("p_yes", "sampled")


class JudgePredictor:
    """Records -> ``{"id", "score"}`` rows (``score`` None for a record with no pair)."""

    def __init__(self, processor, root: str | Path, mode: str, seed: int, renormalize: bool):
        if mode not in MODES:
            raise ValueError(f"filter.score_mode must be one of {MODES}, got {mode!r}")
        self.processor = processor
        self.root = str(root)
        self.mode = mode
        self.seed = int(seed)
        self.renormalize = bool(renormalize)

    def prepare(self, reqs: list[dict]) -> list[list[tuple]]:
        out = []
        for r in reqs:
            rec: Record = r["record"]
            image = load_image(self.root, rec.image)
            out.append([(image, p) for p in get_task(rec.task).judge_prompts(rec.turns)])
        return out

    def predict(self, model, items: list[list[tuple]], reqs: list[dict]) -> list[dict]:
        if self.mode == "p_yes":
            flat = [it for per_record in items for it in per_record]
            values = iter(
                yes_probability(model, self.processor, flat, len(flat), self.renormalize)
                if flat
                else []
            )
            scores = [[next(values) for _ in per_record] for per_record in items]
        else:
            scores = [
                sampled_score(model, self.processor, per_record, stable_seed(self.seed, r["id"]))
                if per_record
                else []
                for r, per_record in zip(reqs, items, strict=True)
            ]
        return [
            {"id": r["id"], "score": float(min(s)) if s else None}
            for r, s in zip(reqs, scores, strict=True)
        ]


def judge_records(model, processor, records: list[Record], env, folder: Path, **kw) -> dict:
    """A judge filter's ``score``: every record scored (sharded and resumable, on
    trainer.devices x num_nodes) into ``folder/scores.jsonl``, then the judge's quality
    against the oracle. ``kw``: :func:`score_records`' mode, batch_size, renormalize,
    checkpoint and load."""
    info = score_records(
        model,
        processor,
        records,
        world=env.world,
        folder=folder,
        out_name=SCORES,
        seed=env.seed,
        trainer_cfg=env.trainer,
        **kw,
    )
    return score_quality(records, read_scores(folder)) | info


def score_records(
    model,
    processor,
    records: list[Record],
    *,
    world: str | Path,
    folder: str | Path,
    out_name: str,
    mode: str,
    batch_size: int,
    seed: int,
    renormalize: bool = False,
    shard_size: int = 2048,
    trainer_cfg=None,
    checkpoint: str | Path | None = None,
    load=load_judge,
) -> dict:
    """Score every record into ``<folder>/<out_name>`` (``{"id", "score"}`` lines sorted by
    id); returns counts and rates. ``checkpoint`` (the judge's folder) lets several
    processes each load the judge, with ``load`` (its family's loader)."""
    predictor = JudgePredictor(processor, world, mode, seed, renormalize)
    reqs = [{"id": r.id, "record": r} for r in records]
    info = run_sharded(
        model,
        predictor,
        reqs,
        folder=folder,
        out_name=out_name,
        batch_size=batch_size,
        shard_size=shard_size,
        trainer_cfg=trainer_cfg,
        name="score",
        load_model=partial(load, str(checkpoint)) if checkpoint is not None else None,
    )
    return {
        "images_per_s": info["images_per_s"],
        "scored_now": info["generated"],
        "shards_resumed": info["shards_resumed"],
        "processes": info["processes"],
    }
