"""The pipeline: world -> collect -> train base -> train generator -> generate -> judge ->
score -> select -> export -> downstream (baseline and synthetic) -> summary.

Each stage runs through the :class:`StageCache`, keyed by exactly the config that decides it,
so a re-run (or a sweep over a downstream-only value) re-uses every finished upstream stage.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from genixer.models.clip_filter import (
    CropScorer,
    clip_spec_of,
    clip_tokenizer,
    load_clip,
    load_openai_clip,
    save_clip,
    train_clip,
)
from genixer.models.judge import JudgePatchFeatures, JudgeProcessor, load_judge, save_judge
from genixer.models.tokenizer import (
    build_tokenizer,
    load_checkpoint_tokenizer,
    load_tokenizer,
    save_tokenizer,
)
from genixer.models.vision_pretrain import (
    TowerFeatures,
    load_tower,
    patch_labels,
    pretrain_patches,
    save_tower,
)
from genixer.models.vlm import load_vlm, processor_for, save_vlm
from genixer.record import read_jsonl, read_records, write_jsonl
from genixer.stages import clip_score as CS
from genixer.stages import collect as C
from genixer.stages import dedup as DD
from genixer.stages import downstream as D
from genixer.stages import export as E
from genixer.stages import generate as G
from genixer.stages import judge_score as JS
from genixer.stages import judge_train as JT
from genixer.stages import labeled as L
from genixer.stages import score as S
from genixer.stages.cache import StageCache, StageResult
from genixer.stages.world import load_splits, materialize, world_key
from genixer.summary import build_summary
from genixer.training.data import EncodedDataset
from genixer.training.fit import fit
from genixer.training.resume import drop_checkpoints
from genixer.utils import build, to_plain
from genixer.world.base import load_image

log = logging.getLogger(__name__)

# Bump a stage's version when its code changes what it writes: the cache key includes it.
STAGE_VERSIONS = {
    "world": 1,
    "collect": 5,
    "pairs": 1,
    "pretrain_vision": 2,
    "train_base": 1,
    "train_generator": 1,
    "generate": 1,
    "decontaminate": 1,
    "dedup": 1,
    "train_judge": 3,
    "train_clip": 2,
    "score": 1,
    "select": 1,
    "export": 2,
    "downstream_baseline": 1,
    "downstream_synthetic": 1,
}


def _vlm_examples(rows: list[dict], by_id: dict) -> list:
    return [(by_id[r["image_id"]], [tuple(t) for t in r["turns"]]) for r in rows]


class Pipeline:
    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.cache = StageCache(cfg.paths.cache_dir)
        self.results: dict[str, StageResult] = {}
        self.seed = int(cfg.seed)

    # ----------------------------------------------------------------- helpers
    def _stage(self, name: str, config, inputs: dict, fn) -> StageResult:
        res = self.cache.run(name, STAGE_VERSIONS[name], to_plain(config), inputs, fn)
        self.results[name] = res
        log.info("stage %-22s %s (%.1fs) %s", name, res.status, res.seconds, res.path)
        if res.status == "ran" and not OmegaConf.select(self.cfg, "checkpointing.keep"):
            drop_checkpoints(res.path)  # the stage is complete: its resume points are not needed
        return res

    def _checkpoint_every(self) -> int:
        """``checkpointing.every_n_steps``: training stages save ``last.ckpt`` this often and
        a re-run of an interrupted stage resumes from it (0: no checkpoints)."""
        return int(OmegaConf.select(self.cfg, "checkpointing.every_n_steps", default=0) or 0)

    def _trainer_key(self) -> dict:
        t = to_plain(self.cfg.trainer)
        return {k: t.get(k) for k in ("precision", "accelerator", "devices", "num_nodes")}

    def _fit_vlm(self, model, tok, examples, train_cfg, folder: Path, seed: int) -> dict:
        processor = processor_for(model, tok)
        dataset = EncodedDataset(examples, processor.encode, self.world.path)
        return fit(
            model,
            dataset,
            processor.collate,
            to_plain(train_cfg),
            self.cfg.trainer,
            seed,
            folder / "logs",
            checkpoint_every=self._checkpoint_every(),
        )

    # ----------------------------------------------------------------- stages
    def run(self) -> dict:
        cfg = self.cfg
        start = time.perf_counter()
        self.world = self._stage(
            "world", world_key(cfg.world), {}, lambda f: materialize(cfg.world, f)
        )
        self.splits = load_splits(self.world.path)
        self.by_id = {i.id: i for items in self.splits.values() for i in items}
        coll_cfg = {
            "collection": C.collection_key(cfg.generator.collection),
            "seed": self.seed,
            "vocab_size": cfg.generator.vocab_size,
        }
        self.collect = self._stage("collect", coll_cfg, {"world": self.world}, self._collect)
        self.tokenizer = load_tokenizer(self.collect.path / "tokenizer")
        steps = [
            ("train_generator", self._train_generator),
            ("generate", self._generate),
            ("select", self._filter),
            ("export", self._export),
            ("downstream", self._downstream),
        ]
        stop_after = cfg.get("stop_after")
        if stop_after is not None and stop_after not in dict(steps):
            raise ValueError(
                f"stop_after must be one of {[n for n, _ in steps]}, got {stop_after!r}"
            )
        for name, step in steps:
            step()
            if name == stop_after:
                break
        return build_summary(self, time.perf_counter() - start)

    def _generator_pairs(self, tau: dict[str, float]) -> tuple[list[dict], dict]:
        c = self.cfg.generator.collection
        labeled = L.read_samples(self.world.path)
        if labeled is not None:  # world=collection: samples converted from public datasets
            shaping = [k for k in C.WORLD_DRAW_OPTIONS if c.get(k)]
            if shaping:  # they shape the built-in world's draws, which a collection lacks
                raise ValueError(
                    f"generator.collection {shaping}: these options apply to the built-in "
                    "world; world=collection's plain rows and samples are its converted ones"
                )
            return L.generator_pairs(labeled, list(c.tasks), tau, self.seed)
        options = to_plain(c.get("sample_options"))
        return C.generator_pairs(
            self.splits["collection"], list(c.tasks), dict(c.share), tau, self.seed, options
        )

    def _pairs_fn(self, folder: Path) -> dict:
        """The generator's training pairs at the configured tau (the instruction levels)."""
        pairs, _ = self._generator_pairs(C.effective_tau(self.cfg.generator.collection))
        C.write_pairs(folder, pairs)
        generic = Counter(p["task"] for p in pairs if "+" not in p["template_id"])
        return {"pairs": len(pairs), "generic_only": dict(sorted(generic.items()))}

    def _collect(self, folder: Path) -> dict:
        """Plain conversations, the tokenizer and what the pairs hold (kinds, tasks), from
        the pairs at the per-task tau (``tau_all`` is applied by the ``pairs`` stage alone:
        the draws do not depend on tau, see ``templates.instruction``)."""
        c = self.cfg.generator.collection
        labeled = L.read_samples(self.world.path)
        tau = {k: float(v) for k, v in c.tau.items()}
        pairs, skipped = self._generator_pairs(tau)
        if labeled is not None:  # _generator_pairs refused the built-in world's options
            plain = L.plain_rows(labeled, list(c.tasks))
        else:
            plain_tasks = c.get("plain_tasks")
            plain = C.plain_rows(
                self.splits["collection"],
                self.seed,
                "plain",
                list(plain_tasks) if plain_tasks else None,
                c.get("plain_per_task", 2),
                c.get("plain_repeat"),
                bool(c.get("plain_caption")),
                to_plain(c.get("plain_single")),
            )
        C.write_plain(folder, plain)
        tok = build_tokenizer(C.tokenizer_corpus(pairs, plain), self.cfg.generator.vocab_size)
        save_tokenizer(tok, folder / "tokenizer")
        return {
            "pairs": len(pairs),
            "plain": len(plain),
            "skipped": dict(skipped),
            "kind_shares": C.kind_shares(pairs),
            "kind_shares_by_task": {
                t: C.kind_shares(p for p in pairs if p["task"] == t) for t in c.tasks
            },
            "task_counts": {t: sum(p["task"] == t for p in pairs) for t in c.tasks},
        }

    def _train_generator(self) -> None:
        g = self.cfg.generator
        base_key = {
            "model": g.model,
            "train": g.base_train,
            "trainer": self._trainer_key(),
            "seed": self.seed,
            "checkpoint": g.checkpoint,
        }
        vision_key = {
            "spec": g.model.spec,
            "train": g.vision_pretrain,
            "seed": self.seed,
            "trainer": self._trainer_key(),
        }
        self.vision = None
        if g.vision_pretrain and not g.checkpoint:
            self.vision = self._stage(
                "pretrain_vision",
                vision_key,
                {"world": self.world, "collect": self.collect},
                self._vision_fn,
            )
        base_inputs = {"collect": self.collect} | ({"vision": self.vision} if self.vision else {})
        self.base = self._stage("train_base", base_key, base_inputs, self._base)
        self.pairs = self._stage(
            "pairs",
            C.pairs_key(g.collection) | {"seed": self.seed},
            {"collect": self.collect},
            self._pairs_fn,
        )
        gen_key = {"train": g.gen_train, "trainer": self._trainer_key(), "seed": self.seed}
        self.generator = self._stage(
            "train_generator",
            gen_key,
            {"base": self.base, "collect": self.collect, "pairs": self.pairs},
            self._gen_train,
        )

    def _base(self, folder: Path) -> dict:
        g = self.cfg.generator
        if g.checkpoint:
            model = load_vlm(g.checkpoint)
            save_vlm(model, folder / "model")
            save_tokenizer(load_checkpoint_tokenizer(g.checkpoint), folder / "model")
            return {"from_checkpoint": str(g.checkpoint)}
        model = self._new_vlm(self.cfg.generator.model, self.seed, "base")
        plain = C.read_plain(self.collect.path)
        info = self._fit_vlm(
            model, self.tokenizer, _vlm_examples(plain, self.by_id), g.base_train, folder, self.seed
        )
        save_vlm(model, folder / "model")
        return info

    def _new_vlm(self, model_cfg, seed: int, tag: str):
        """A fresh tiny VLM; its vision tower from the vision pretraining stage, if any."""
        D.seed_model_init(seed, tag)
        model = build(model_cfg, tokenizer=self.tokenizer)
        if self.vision is not None:
            load_tower(model, self.vision.path)
        return model

    def _vision_fn(self, folder: Path) -> dict:
        g = self.cfg.generator
        D.seed_model_init(self.seed, "vision")
        model = build(g.model, tokenizer=self.tokenizer)
        processor = processor_for(model, self.tokenizer)
        spec = g.model.spec
        tower = model.model.vision_tower
        encoder = TowerFeatures(tower, spec.get("vision_feature_layer", -2))
        info = self._pretrain_patches(
            encoder,
            self.splits["collection"],
            processor.pixels,
            spec,
            g.vision_pretrain,
            folder / "logs",
        )
        save_tower(tower, folder)
        return info

    def _pretrain_patches(
        self, encoder, images, to_pixels, spec, train_cfg, log_dir: Path, factored=False
    ) -> dict:
        """Train ``encoder`` to name what lies under each patch of ``images`` (their scenes
        give the labels; ``to_pixels`` is the model's own image -> pixel tensor)."""
        pixels = torch.stack([to_pixels(load_image(self.world.path, i)) for i in images])
        labels = torch.stack(
            [patch_labels(i.scene, spec.image_size, spec.patch_size) for i in images]
        )
        trainer = build(
            self.cfg.trainer, max_steps=int(train_cfg.steps), default_root_dir=str(log_dir)
        )
        return pretrain_patches(encoder, pixels, labels, train_cfg, trainer, self.seed, factored)

    def _gen_train(self, folder: Path) -> dict:
        g = self.cfg.generator
        model = load_vlm(self.base.path / "model")
        tokenizer = self._tokenizer_at(self.base.path / "model")
        pairs = C.read_pairs(self.pairs.path)
        examples = [(self.by_id[p["image_id"]], [(p["instruction"], p["target"])]) for p in pairs]
        # Plain VQA kept in the mix: without it the generator forgets how to answer.
        plain = C.read_plain(self.collect.path)
        n_plain = int(
            len(examples) * g.gen_train.plain_qa_share / max(1e-6, 1 - g.gen_train.plain_qa_share)
        )
        rng = random.Random(f"{self.seed}:mix")
        examples += _vlm_examples(rng.sample(plain, min(n_plain, len(plain))), self.by_id)
        info = self._fit_vlm(model, tokenizer, examples, g.gen_train, folder, self.seed + 1)
        save_vlm(model, folder / "model")
        if tokenizer is not self.tokenizer:
            save_tokenizer(tokenizer, folder / "model")
        return info

    def _tokenizer_at(self, model_dir: Path):
        """The tokenizer a saved model was trained with: a real checkpoint's own (stored
        beside its weights), else the project tokenizer built from the collection."""
        if (model_dir / "tokenizer.json").is_file():
            return load_tokenizer(model_dir)
        return self.tokenizer

    def _generate(self) -> None:
        cfg = self.cfg
        decontaminated = self._decontaminate()  # may narrow self.splits["pool"]
        gen_cfg = {
            "generate": G.generation_key(to_plain(cfg.generate)),
            "task": cfg.task.name,
            "members": list(cfg.generator.collection.tasks),
            "seed": self.seed,
            "generator": cfg.generator.name,
        }
        self.generated = self._stage(
            "generate",
            gen_cfg,
            {"generator": self.generator, "world": self.world} | decontaminated,
            self._generate_fn,
        )
        self.records = G.load_records(self.generated.path)
        self._dedup()  # self.records := the deduplicated records; scoring reads those

    def _decontaminate(self) -> dict:
        """``generate.decontaminate``: pool images whose content is in a benchmark's image set
        are excluded before generation. Returns the generate stage's extra input."""
        specs = DD.benchmark_specs(to_plain(self.cfg.generate.get("decontaminate")))
        if not specs:
            return {}
        key = {"benchmarks": specs, "content": DD.benchmark_fingerprint(specs)}
        pool = self.splits["pool"]
        self.decontaminated = self._stage(
            "decontaminate",
            key,
            {"world": self.world},
            lambda f: DD.decontaminate(specs, self.world.path, pool, f),
        )
        excluded = DD.excluded_ids(self.decontaminated.path)
        self.splits["pool"] = [i for i in pool if i.id not in excluded]
        return {"decontaminate": self.decontaminated}

    def _dedup(self) -> None:
        d = self.cfg.get("dedup") or {}
        same_image, corpus_max = bool(d.get("same_image", True)), d.get("corpus_max")
        self.deduped = self._stage(
            "dedup",
            {
                "same_image": same_image,
                "corpus_max": corpus_max,
                "normalization": DD.normalization_fingerprint(),
            },
            {"generate": self.generated},
            lambda f: DD.run_dedup(self.records, f, same_image, corpus_max),
        )
        self.records = read_records(self.deduped.path / DD.RECORDS)

    def _generate_fn(self, folder: Path) -> dict:
        cfg = self.cfg
        model = load_vlm(self.generator.path / "model")
        processor = processor_for(model, self._tokenizer_at(self.generator.path / "model"))
        pool = self.splits["pool"][: cfg.generate.max_images or None]
        reqs = G.requests(
            pool, cfg.generate.per_image, cfg.task.name, cfg.generator.name, self.seed
        )
        decoding = {
            "temperature": cfg.generate.temperature,
            "max_new_tokens": cfg.generate.max_new_tokens,
            "top_p": cfg.generate.top_p,
        }
        if cfg.generate.get("question_temperature") is not None:
            decoding["question_temperature"] = float(cfg.generate.question_temperature)
        info = G.run_generation(
            model,
            processor,
            reqs,
            self.world.path,
            folder,
            cfg.generate.batch_size,
            cfg.generate.shard_size,
            decoding,
            trainer_cfg=cfg.trainer,
            num_workers=int(cfg.generate.get("num_workers", 0)),
            backend=cfg.generate.get("backend", "hf"),
            checkpoint=self.generator.path / "model",
        )
        scenes = {i.id: i.scene for i in pool}
        info |= G.parse_generations(
            folder,
            cfg.task.name,
            list(cfg.generator.collection.tasks),
            cfg.generator.name,
            decoding,
            scenes,
        )
        return info

    def _filter(self) -> None:
        f = self.cfg.filter
        self.scores = None
        if f.name == "fuyu":
            judge_key = {
                "model": f.model,
                "train": f.train,
                "vision_pretrain": f.get("vision_pretrain"),
                "seed": self.seed,
                "checkpoint": f.checkpoint,
                "trainer": self._trainer_key(),
            }
            self.judge = self._stage(
                "train_judge",
                judge_key,
                {"world": self.world, "collect": self.collect},
                self._judge_fn,
            )
            score_key = {"mode": f.score_mode, "renormalize": f.renormalize, "seed": self.seed}
            if f.score_mode == "p_yes":  # deterministic: the seed decides nothing
                score_key.pop("seed")
            else:  # sampled: each record seeded from (seed, record id), whatever its batch
                score_key["seeding"] = "per_record"
            self.scored = self._stage(
                "score",
                score_key,
                {"judge": self.judge, "generate": self.deduped},
                self._score_fn,
            )
        elif f.name == "clip":
            clip_key = {
                "model": f.model,
                "train": f.train,
                "seed": self.seed,
                "checkpoint": f.checkpoint,
                "min_crop_px": f.min_crop_px,
            }
            self.judge = self._stage(
                "train_clip", clip_key, {"world": self.world}, self._clip_train_fn
            )
            score_key = {"filter": "clip", "mode": f.score_mode, "min_crop_px": f.min_crop_px}
            margin = self._clip_margin()
            if margin is not None:  # absent when off: old scores stay valid
                score_key["margin"] = list(margin)
            self.scored = self._stage(
                "score",
                score_key,
                {"judge": self.judge, "generate": self.deduped},
                self._clip_score_fn,
            )
        elif f.name != "none":
            raise ValueError(f"unknown filter {f.name!r}")
        if f.name != "none":
            self.scores = {
                r["id"]: r["score"]
                for r in read_jsonl(self.scored.path / S.SCORES)
                if r["score"] is not None
            }
        sel_key = {"band": f.get("band"), "threshold": f.get("threshold"), "filter": f.name}
        sel_key["fraction"] = self._fraction()
        inputs = {"generate": self.deduped} | (
            {"score": self.scored} if self.scores is not None else {}
        )
        self.selected = self._stage("select", sel_key, inputs, self._select_fn)

    def _fraction(self) -> float:
        """``select.fraction``: the share of the filtered records kept (data-scale ablation)."""
        return float(OmegaConf.select(self.cfg, "select.fraction", default=1.0))

    def _judge_fn(self, folder: Path) -> dict:
        f = self.cfg.filter
        if f.checkpoint:
            model = load_judge(f.checkpoint)
            save_judge(model, folder / "model")
            save_tokenizer(load_checkpoint_tokenizer(f.checkpoint), folder / "model")
            return {"from_checkpoint": str(f.checkpoint)}
        D.seed_model_init(self.seed, "judge")
        model = build(f.model, tokenizer=self.tokenizer)
        processor = JudgeProcessor.for_model(model, self.tokenizer)
        info: dict = {}
        if f.get("vision_pretrain"):
            info["vision_pretrain"] = self._judge_vision_fn(model, processor, folder)
        judge = self.splits["judge"]
        examples = [
            (img, [item])
            for img, item in JT.judge_examples(
                judge,
                f.train.items_per_image,
                f.train.hard_negatives,
                self.seed,
                bool(f.train.get("explain", False)),
                float(f.train.get("answerable", 0.8)),
            )
        ]
        examples += JT.vqa_examples(judge, int(f.train.get("vqa_per_image", 0)), self.seed)
        dataset = EncodedDataset(examples, processor.encode_turns, self.world.path)
        fitted = fit(
            model,
            dataset,
            processor.collate,
            to_plain(f.train),
            self.cfg.trainer,
            self.seed + 2,
            folder / "logs",
            checkpoint_every=self._checkpoint_every(),
        )
        save_judge(model, folder / "model")
        return info | fitted

    def _judge_vision_fn(self, model, processor, folder: Path) -> dict:
        """The judge's own vision pretraining on the judge split (its images, never the
        generator's collection): patch embedding + first decoder layer name each patch."""
        f = self.cfg.filter
        encoder = JudgePatchFeatures(model, processor, int(f.vision_pretrain.get("layer", 1)))
        return self._pretrain_patches(
            encoder,
            self.splits["judge"],
            processor.image_patches,
            f.model.spec,
            f.vision_pretrain,
            folder / "vision_logs",
            factored=True,
        )

    def _clip_scorer(self, model):
        f = self.cfg.filter
        return CropScorer(
            model,
            clip_tokenizer(model.context_length),  # the model's own geometry: a real
            model.visual.image_size[0],  # checkpoint (filter.checkpoint) is not the tiny spec
            min_crop_px=f.min_crop_px,
            mode=f.score_mode,
        )

    def _clip_margin(self) -> tuple[float, float] | None:
        """``filter.margin`` as ``CropScorer.score``'s ``(stride, max_iou)``; None when off."""
        m = self.cfg.filter.get("margin")
        return (float(m.stride), float(m.max_iou)) if m and m.enabled else None

    def _clip_train_fn(self, folder: Path) -> dict:
        f = self.cfg.filter
        if f.checkpoint:
            model = load_openai_clip(f.checkpoint)
            spec = clip_spec_of(model)
            save_clip(model, spec, folder / "model")
            return {"checkpoint": str(f.checkpoint), "spec": spec}
        D.seed_model_init(self.seed, "clip")
        spec = to_plain(f.model.spec)
        model = build(f.model)
        scorer = self._clip_scorer(model)
        pairs = CS.training_pairs(self.splits["judge"], self.world.path, scorer, self.seed)
        info = train_clip(
            model,
            scorer.tokenizer,
            pairs,
            f.train.steps,
            f.train.batch_size,
            f.train.lr,
            self.seed,
            spec["image_size"],
        )
        save_clip(model, spec, folder / "model")
        with torch.no_grad():
            info |= CS.calibrate_threshold(scorer, pairs, self.seed)
        return info | {"pairs": len(pairs), "skipped": dict(scorer.skipped_reasons)}

    def _clip_score_fn(self, folder: Path) -> dict:
        scorer = self._clip_scorer(load_clip(self.judge.path / "model"))
        items, owners, skipped = CS.clip_items(self.records, self.world.path)
        margin = self._clip_margin()
        batch = self.cfg.filter.batch_size
        values = scorer.score(items, batch_size=batch, margin=margin) if items else []
        scores = dict(zip(owners, values, strict=True))
        skipped.update(scorer.skipped_reasons)
        rows = [{"id": r.id, "score": scores.get(r.id)} for r in self.records]
        write_jsonl(folder / S.SCORES, rows)
        kept = {k: v for k, v in scores.items() if v is not None}
        info = {"skipped": dict(skipped)}
        if margin is not None:
            info["no_rival_window"] = scorer.no_rival_window
        return S.score_quality(self.records, kept) | info

    def _score_fn(self, folder: Path) -> dict:
        f = self.cfg.filter
        model = load_judge(self.judge.path / "model")
        processor = JudgeProcessor.for_model(model, self._tokenizer_at(self.judge.path / "model"))
        info = JS.score_records(  # sharded and resumable, on trainer.devices x num_nodes
            model,
            processor,
            self.records,
            self.world.path,
            folder,
            S.SCORES,
            f.score_mode,
            f.batch_size,
            self.seed,
            f.renormalize,
            trainer_cfg=self.cfg.trainer,
            checkpoint=self.judge.path / "model",
        )
        rows = read_jsonl(folder / S.SCORES)
        scores = {r["id"]: r["score"] for r in rows if r["score"] is not None}
        return S.score_quality(self.records, scores) | info

    def _threshold(self) -> float | None:
        """``filter.threshold``, or the trained filter's own when it says ``calibrated``."""
        t = self.cfg.filter.get("threshold")
        if t != "calibrated":
            return t
        if self.cfg.filter.name == "clip" and self._clip_margin() is not None:
            raise ValueError(
                "filter.threshold=calibrated is a similarity; margin scores (filter.margin) "
                "need a margin threshold, e.g. 0: the box fits its expression best"
            )
        found = self.judge.info.get("calibrated_threshold")
        if found is None:
            raise ValueError(
                "filter.threshold=calibrated needs a filter trained here (a checkpoint has no "
                "calibration): give a number"
            )
        return float(found)

    def _select_fn(self, folder: Path) -> dict:
        f = self.cfg.filter
        kept, info = S.select(
            self.records, self.scores, f.get("band"), self._threshold(), self._fraction()
        )
        write_jsonl(folder / "selected.jsonl", (r.to_json() for r in kept))
        return info

    def _export(self) -> None:
        def fn(folder: Path) -> dict:
            kept = read_records(self.selected.path / "selected.jsonl")
            info = E.export_llava(kept, self.world.path, folder)
            if self.cfg.task.name == "rec" or any(r.task == "rec" for r in kept):
                info |= E.export_shikra_rec(kept, folder, self.scores)
            return info

        self.exported = self._stage("export", {}, {"select": self.selected}, fn)

    def _downstream(self) -> None:
        d = self.cfg.downstream
        key = {
            "model": d.model,
            "finetune": d.finetune,
            "seed": d.seed,
            "eval": d.eval,
            "trainer": self._trainer_key(),
            "small_set_tasks": d.get("small_set_tasks"),
        }
        base_inputs = {"world": self.world, "collect": self.collect}
        if self.vision is not None:
            base_inputs["vision"] = self.vision
        self.baseline = self._stage(
            "downstream_baseline",
            key,
            base_inputs,
            lambda f: self._downstream_fn(f, synthetic=False),
        )
        key_s = key | {"pretrain": d.pretrain}
        self.synthetic = self._stage(
            "downstream_synthetic",
            key_s,
            base_inputs | {"export": self.exported},
            lambda f: self._downstream_fn(f, synthetic=True),
        )

    def _downstream_fn(self, folder: Path, synthetic: bool) -> dict:
        d = self.cfg.downstream
        seed = int(d.seed)
        model = self._new_vlm(d.model, seed, "downstream")
        info: dict = {}
        if synthetic:
            entries = E.read_llava(self.exported.path / E.LLAVA_JSON)
            syn = [(self.by_id[Path(img).stem], turns) for _, img, turns in entries]
            for i, phase in enumerate(d.pretrain):
                if syn:
                    info[f"pretrain_{i}"] = self._fit_vlm(
                        model, self.tokenizer, syn, phase, folder / f"p{i}", seed + 10 + i
                    )
        tasks = list(d.small_set_tasks) if d.get("small_set_tasks") else None
        small = C.plain_rows(self.splits["downstream"], seed, "downstream", tasks)
        info["finetune"] = self._fit_vlm(
            model, self.tokenizer, _vlm_examples(small, self.by_id), d.finetune, folder, seed + 20
        )
        metric = d.eval.get("metric", "vqa")
        questions = D.QUESTION_MAKERS[metric](self.splits["benchmark"], d.eval.per_image, self.seed)
        write_jsonl(folder / D.QUESTIONS, questions)
        processor = processor_for(model, self.tokenizer)
        info |= D.evaluate_vqa(
            model,
            processor,
            questions,
            self.world.path,
            d.eval.batch_size,
            d.eval.max_new_tokens,
            folder / D.ANSWERS,
            "synthetic" if synthetic else "baseline",
            metric,
        )
        return info
