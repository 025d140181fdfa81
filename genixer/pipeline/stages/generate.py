"""Generation: the generator writes samples for unlabeled images, batched and sharded.

Every request (image, sample index) gets a stable id and its own seed, so its text does not
depend on the batch it lands in. Shards are written whole by atomic rename; a re-run skips
shards already on disk, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from functools import partial
from pathlib import Path

import torch

from genixer.core.build import to_plain
from genixer.core.record import Record, read_jsonl, record_id, stable_seed, write_jsonl
from genixer.core.text import normalize_answer
from genixer.models.family import family
from genixer.models.generation import DEFAULT_SAMPLER, Phases, generate, ignored_sampling
from genixer.models.llava.model import load_vlm
from genixer.pipeline.artifacts import project_tokenizer, world_splits
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.decontaminate import excluded_ids
from genixer.tasks import AgnosticTask, ParseError, detect_grounding, get_task
from genixer.tasks.base import QUESTION_MARKER
from genixer.tasks.generic import detect_generic
from genixer.tasks.templates import instruction
from genixer.training.predict import run_sharded
from genixer.world.base import WorldImage, load_image

log = logging.getLogger(__name__)
RECORDS = "records.jsonl"
GENERATIONS = "generations.jsonl"  # raw texts of every request, merged from the shards
FAILURES = "parse_failures.jsonl"


def requests(
    images: list[WorldImage], per_image: int, task: str, generator: str, seed: int
) -> list[dict]:
    """What to generate, sorted by id: the order (and so the shards) depend on nothing else."""
    out = []
    for img in images:
        for k in range(per_image):
            s = stable_seed(seed, img.id, task, k)
            template_id, text = instruction(
                None if task == "generic" else task, random.Random(s), 0.0
            )
            rid = record_id(img.id, task, template_id, generator, s)
            out.append(
                {
                    "id": rid,
                    "image_id": img.id,
                    "image": img.path,
                    "seed": s,
                    "template_id": template_id,
                    "instruction": text,
                }
            )
    return sorted(out, key=lambda r: r["id"])


BACKENDS = ("hf", "vllm")
# generate.* values that change how fast records come, never what they are: not in the key
# (compile: see docs/user-guide.md, Sampling on a GPU).
RUNTIME_KEYS = ("batch_size", "num_workers", "compile")


def generation_key(gen_cfg: dict) -> dict:
    """The part of the ``generate`` config that decides the records (the stage's cache key).
    The default backend and sampler stay out of it, so keys from before the knobs still
    match."""
    key = {k: v for k, v in gen_cfg.items() if k not in RUNTIME_KEYS}
    for name, default in (("backend", "hf"), ("sampler", DEFAULT_SAMPLER)):
        if key.get(name, default) == default:
            key.pop(name, None)
    if key.get("question_temperature") is None:
        key.pop("question_temperature", None)
    return key


class GenerationPredictor:
    """One batch of requests -> one raw row each (``raw`` text, ``new_tokens``); the
    sharded predict runner calls it. Plain attributes only, so it pickles."""

    def __init__(self, processor, root: str | Path, decoding: dict, compile: bool = False) -> None:
        self.processor = processor
        self.root = str(root)
        self.decoding = dict(decoding)
        self.compile = bool(compile)

    def prepare(self, reqs: list[dict]) -> list:
        return [load_image(self.root, r["image"]) for r in reqs]

    def phases(self) -> Phases | None:
        """``question_temperature`` set: the first word of each question (the kind to ask)
        samples at it, the rest at ``temperature``."""
        qt = self.decoding.get("question_temperature")
        if qt is None:
            return None
        tok = self.processor.tokenizer
        markers = [QUESTION_MARKER, f" {QUESTION_MARKER}"]  # "\nQuestion:" ends as the first
        return Phases(float(qt), [tok.encode(m, add_special_tokens=False) for m in markers])

    def predict(self, model, images: list, reqs: list[dict]) -> list[dict]:
        try:
            return self._generate(model, images, reqs)
        except ValueError:  # an image the processor cannot take: the rest still generate
            rows = []
            for image, r in zip(images, reqs, strict=True):
                try:  # a record's text does not depend on its batch: alone is the same
                    rows += self._generate(model, [image], [r])
                except ValueError as err:
                    log.warning("generate: %s rejected by the processor: %s", r["image"], err)
                    rows.append(dict(r, raw=None, new_tokens=0, rejected=str(err)))
            return rows

    def _generate(self, model, images: list, reqs: list[dict]) -> list[dict]:
        stats: dict = {}
        texts = generate(
            model,
            self.processor,
            [(img, [(r["instruction"], None)]) for img, r in zip(images, reqs, strict=True)],
            [r["seed"] for r in reqs],
            max_new_tokens=self.decoding["max_new_tokens"],
            temperature=self.decoding["temperature"],
            top_p=self.decoding.get("top_p"),
            stats=stats,
            phases=self.phases(),
            sampler=self.decoding.get("sampler", DEFAULT_SAMPLER),
            compile=self.compile,
        )
        return [
            dict(r, raw=t, new_tokens=n)
            for r, t, n in zip(reqs, texts, stats["new_tokens"], strict=True)
        ]


def run_generation(
    model,
    processor,
    reqs: list[dict],
    *,
    world: Path,
    folder: Path,
    decoding: dict,
    batch_size: int,
    shard_size: int,
    trainer_cfg=None,
    num_workers: int = 0,
    backend: str = "hf",
    checkpoint: str | Path | None = None,
    compile: bool = False,
    load=load_vlm,
) -> dict:
    """Generate for every request into ``folder``: shards under ``raw/`` (the unit of
    resume), then ``generations.jsonl``, every request exactly once, sorted by id.

    ``trainer_cfg`` (a Lightning Trainer config) sets the processes (devices x nodes);
    None runs one CPU process. ``checkpoint`` is the generator's saved folder: when several
    processes run, each loads the model from it (a model in memory does not pickle once
    transformers has hooked it; ``load`` is its family's loader). ``backend="vllm"`` serves that folder on a vLLM engine
    instead (one process driving the GPUs; same rows, same shards). ``compile`` decodes with
    a static KV cache (compiled on a GPU); ``decoding["sampler"]`` picks the seeded sampler."""
    if backend not in BACKENDS:
        raise ValueError(f"generate.backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "vllm" and decoding.get("question_temperature") is not None:
        raise ValueError("generate.question_temperature is not supported by the vllm backend")
    if backend == "vllm" and (
        decoding.get("sampler", DEFAULT_SAMPLER) != DEFAULT_SAMPLER or compile
    ):
        raise ValueError("generate.sampler / generate.compile: vllm samples and compiles itself")
    predictor = GenerationPredictor(processor, world, decoding, compile)
    load_model = partial(load, str(checkpoint)) if checkpoint is not None else None
    if backend == "vllm":
        from genixer.models.vllm_backend import VllmPredictor, export_for_vllm

        if checkpoint is None:
            raise ValueError("generate.backend=vllm needs the generator's model folder")
        processor.tokenizer.save_pretrained(str(folder / "vllm-tokenizer"))
        served = export_for_vllm(checkpoint, folder / "vllm-tokenizer", folder / "vllm")
        predictor = VllmPredictor(served, world, decoding)
        model, load_model, trainer_cfg = torch.nn.Identity(), None, None  # vLLM owns the GPUs
    return run_sharded(
        model,
        predictor,
        reqs,
        folder=folder,
        out_name=GENERATIONS,
        batch_size=batch_size,
        shard_size=shard_size,
        trainer_cfg=trainer_cfg,
        num_workers=num_workers,
        name="generate",
        load_model=load_model,
    )


def parse_generations(
    folder: Path, task: str, members: list[str], provenance: dict, scenes: dict
) -> dict:
    """``generations.jsonl`` -> ``records.jsonl`` (parsed, oracle-checked) +
    ``parse_failures.jsonl``; ``provenance`` (generator, sampling) goes into every record."""
    parse = _parser(task, members)
    records, failures = [], []
    errors: Counter = Counter()  # why oracle-false records are false
    for r in read_jsonl(folder / GENERATIONS):  # complete and sorted by id (merge-checked)
        if r.get("rejected"):  # the processor could not take the image: nothing generated
            failures.append(_failure(r, ParseError("image_rejected", r["rejected"])))
            continue
        try:
            t, turns = parse(r["raw"])
        except ParseError as err:
            failures.append(_failure(r, err))
            continue
        rec = Record(
            id=r["id"],
            image_id=r["image_id"],
            image=r["image"],
            task=t.name,
            requested_task=task,
            turns=turns,
            raw=r["raw"],
            provenance={
                "generator": provenance["generator"],
                "template_id": r["template_id"],
                "seed": r["seed"],
                **provenance["decoding"],
            },
        )
        scene = scenes.get(r["image_id"])
        if scene is not None:
            error = t.oracle_error(scene, turns)
            rec.oracle = error is None
            if error is not None:
                errors[error] += 1
        records.append(rec)
    write_jsonl(folder / RECORDS, (rec.to_json() for rec in records))
    write_jsonl(folder / FAILURES, failures)
    return generation_counts(records, failures, errors)


def _parser(task: str, members: list[str]):
    """``raw text -> (task, turns)``: the requested task's parser, or, in the task-agnostic
    mode, the one the text's form points to among the generator's tasks."""
    if task != "generic":
        return lambda raw: (get_task(task), get_task(task).parse(raw))
    grounding = all(get_task(m).group == "grounding" for m in members)
    return AgnosticTask(members, detect_grounding if grounding else detect_generic).parse


def _failure(row: dict, err: ParseError) -> dict:
    return {
        "id": row["id"],
        "image_id": row["image_id"],
        "raw": row["raw"],
        "reason": err.reason,
        "detail": str(err),
    }


def generation_counts(records: list[Record], failures: list[dict], errors: Counter) -> dict:
    """The generate stage's numbers: parse failures by reason, oracle accuracy and the
    reasons of its errors, the task mix, each question kind's share, distinct questions."""
    judged = [r.oracle for r in records if r.oracle is not None]
    kinds = Counter(t.kind or "unknown" for r in records for t in r.turns)
    n_kinds = sum(kinds.values()) or 1
    questions = {normalize_answer(t.question) for r in records for t in r.turns}
    return {
        "num_records": len(records),
        "parse_failures": len(failures),
        "parse_failure_reasons": dict(Counter(f["reason"] for f in failures)),
        "oracle_accuracy": round(sum(judged) / len(judged), 4) if judged else None,
        "oracle_errors": dict(sorted(errors.items())),
        "task_mix": {
            k: round(v / max(1, len(records)), 4)
            for k, v in sorted(Counter(r.task for r in records).items())
        },
        "kind_shares": {k: round(v / n_kinds, 4) for k, v in sorted(kinds.items())},
        "distinct_questions_per_100": round(100 * len(questions) / max(1, len(records)), 2),
    }


def diversity(info: dict, training_shares: dict[str, float]) -> dict:
    """Each question kind's share of the generated records beside its training share."""
    gen = info["kind_shares"]
    per_kind = {}
    for k in sorted(set(gen) | set(training_shares)):
        g, t = gen.get(k, 0.0), training_shares.get(k, 0.0)
        per_kind[k] = {"generated": g, "training": t, "ratio": round(g / t, 3) if t else None}
    ratios = [v["ratio"] for v in per_kind.values() if v["ratio"] is not None]
    return {
        "distinct_questions_per_100": info["distinct_questions_per_100"],
        "kinds": per_kind,
        "max_share_ratio": max(ratios) if ratios else None,
    }


def load_records(folder: Path) -> list[Record]:
    return [Record.from_dict(d) for d in read_jsonl(folder / RECORDS)]


def decoding_of(gen_cfg) -> dict:
    """The sampling settings every record's provenance carries."""
    decoding = {
        "temperature": gen_cfg.temperature,
        "max_new_tokens": gen_cfg.max_new_tokens,
        "top_p": gen_cfg.top_p,
    }
    if gen_cfg.question_temperature is not None:
        decoding["question_temperature"] = float(gen_cfg.question_temperature)
    if (
        gen_cfg.sampler != DEFAULT_SAMPLER
    ):  # absent for the default: the records made so far say nothing
        decoding["sampler"] = gen_cfg.sampler
    return decoding


def generation_pool(ctx: RunContext, inputs: Inputs) -> list[WorldImage]:
    """The pool images to generate for: the world's pool without the images a benchmark
    holds (the decontaminate stage), capped at ``generate.max_images``."""
    pool = world_splits(inputs["world"].path)["pool"]
    if "decontaminate" in inputs:
        excluded = excluded_ids(inputs["decontaminate"].path)
        pool = [i for i in pool if i.id not in excluded]
    return pool[: ctx.cfg.generate.max_images or None]


class Generate(Stage):
    name, version, phase = "generate", 1, "generate"
    reads = {"generator": "train_generator", "world": "world", "decontaminate": "decontaminate"}
    uses = {"collect": "collect"}

    def key(self, ctx: RunContext) -> dict:
        cfg = ctx.cfg
        return {
            "generate": generation_key(to_plain(cfg.generate)),
            "task": cfg.task.name,
            "members": list(cfg.generator.collection.tasks),
            "seed": ctx.seed,
            "generator": cfg.generator.name,
        }

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        cfg, gen_dir, kind = ctx.cfg, inputs["generator"].path / "model", family(ctx.cfg.generator)
        model = kind.load(gen_dir)
        processor = kind.processor(model, gen_dir, project_tokenizer(inputs["collect"].path))
        pool = generation_pool(ctx, inputs)
        reqs = requests(pool, cfg.generate.per_image, cfg.task.name, cfg.generator.name, ctx.seed)
        decoding = decoding_of(cfg.generate)
        info = run_generation(
            model,
            processor,
            reqs,
            world=inputs["world"].path,
            folder=folder,
            decoding=decoding,
            batch_size=cfg.generate.batch_size,
            shard_size=cfg.generate.shard_size,
            trainer_cfg=cfg.trainer,
            num_workers=cfg.generate.num_workers,
            backend=cfg.generate.backend,
            checkpoint=gen_dir,
            compile=cfg.generate.compile,
            load=kind.load,
        )
        provenance = {"generator": cfg.generator.name, "decoding": decoding}
        ignored = ignored_sampling(model)
        if ignored:  # the checkpoint's own sampling defaults: not used, said so
            log.info("generate: the checkpoint's generation config is not used: %s", ignored)
            info["checkpoint_sampling_ignored"] = ignored
        scenes = {i.id: i.scene for i in pool}
        members = list(cfg.generator.collection.tasks)
        return info | parse_generations(folder, cfg.task.name, members, provenance, scenes)

    def summarize(self, ctx: RunContext, results) -> dict:
        gen = results["generate"].info
        collect = results["collect"].info  # what the generator saw, for the task asked
        task = ctx.cfg.task.name
        seen = collect["kind_shares"] if task == "generic" else collect["kind_shares_by_task"][task]
        return {
            "generation": {
                "num_records": gen["num_records"],
                "parse_failures": gen["parse_failures"],
                "parse_failure_reasons": gen["parse_failure_reasons"],
                "oracle_accuracy": gen["oracle_accuracy"],
                "oracle_errors": gen.get("oracle_errors"),  # absent from older cached stages
                "task_mix": gen["task_mix"],
                "diversity": diversity(gen, seen),
                "images_per_s": gen.get("images_per_s"),
                "records": str(results["generate"].path / RECORDS),
            }
        }
