"""The collect stage (the paper's instruction data collection): labeled images -> plain VQA
conversations (what the base model learns to answer), the counts of the generator pairs
(two-level templates) and the project tokenizer built from every text the models will see.

The built-in world draws its samples from scene graphs; ``world=collection`` brings samples
converted from public datasets (``samples.jsonl`` in the world folder). The pairs themselves
are written by the ``pairs`` stage, which alone depends on tau.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from genixer.core.build import to_plain
from genixer.core.chat import prompt as chat_prompt
from genixer.core.record import QA, read_jsonl, write_jsonl
from genixer.models.tokenizer import build_tokenizer, save_tokenizer
from genixer.pipeline.artifacts import world_splits
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.sources.collection import SAMPLES
from genixer.sources.datasets import Sample
from genixer.tasks import get_task
from genixer.tasks.base import judge_prompt
from genixer.tasks.templates import GENERIC_INSTRUCTIONS, MC_ANSWER_HINT, TASK_SUFFIX, instruction
from genixer.world.base import WorldImage
from genixer.world.questions import plain_conversation

PAIRS = "pairs.jsonl"
PLAIN = "plain_qa.jsonl"


def generator_pairs(
    images: Iterable[WorldImage],
    tasks: list[str],
    share: dict[str, float],
    tau: dict[str, float],
    seed: int,
) -> tuple[list[dict], Counter]:
    """One row per (image, task) draw: ``share[task]`` samples per image on average."""
    rng = random.Random(f"{seed}:collect")
    skipped: Counter = Counter()
    rows = []
    for img in images:
        for name in tasks:
            task = get_task(name)
            n = int(share[name]) + (rng.random() < share[name] % 1)
            for _ in range(n):
                turns = task.sample(img.scene, rng)
                if turns is None:
                    skipped[f"{name}:no_valid_sample"] += 1
                    continue
                template_id, text = instruction(name, rng, tau[name])
                rows.append(
                    {
                        "image_id": img.id,
                        "image": img.path,
                        "task": name,
                        "template_id": template_id,
                        "instruction": text,
                        "target": task.serialize(turns),
                        "kinds": [t.kind for t in turns],
                    }
                )
    return rows, skipped


def task_conversation(scene, rng: random.Random, tasks: list[str], per_task: int = 2) -> list:
    """A multi-turn conversation of samples from the given tasks, in their downstream form
    (e.g. REC questions answered with boxes for a Shikra-style model)."""
    turns = []
    for name in tasks:
        task = get_task(name)
        for _ in range(per_task):
            sample = task.sample(scene, rng)
            if sample is not None:
                kinds = [t.kind for t in sample]
                for (q, a), k in zip(
                    task.conversation(sample), kinds + [kinds[-1]] * 9, strict=False
                ):
                    turns.append((q, a, k))
    rng.shuffle(turns)
    return turns


def plain_rows(
    images: Iterable[WorldImage],
    seed: int,
    tag: str,
    tasks: list[str] | None = None,
    per_task: int = 2,
) -> list[dict]:
    """One multi-turn conversation per image: every question kind once (``tasks`` None), or
    ``per_task`` samples of each of ``tasks`` in their downstream form."""
    rng = random.Random(f"{seed}:{tag}")
    rows = []
    for img in images:
        if tasks is None:
            turns = [(t.question, t.answer, t.kind) for t in plain_conversation(img.scene, rng)]
        else:
            turns = task_conversation(img.scene, rng, tasks, per_task)
        rows.append(
            {
                "image_id": img.id,
                "image": img.path,
                "turns": [[q, a] for q, a, _ in turns],
                "kinds": [k for _, _, k in turns],
            }
        )
    return rows


# --------------------------------------------------------------- world=collection
def read_samples(world_folder: str | Path) -> list[Sample] | None:
    """The world's labeled samples (image paths relative to the world folder), or None for a
    world without them (the built-in world makes its samples from scene graphs)."""
    path = Path(world_folder) / SAMPLES
    if not path.exists():
        return None
    return [Sample.from_dict(d) for d in read_jsonl(path)]


def labeled_pairs(
    samples: Iterable[Sample], tasks: list[str], tau: dict[str, float], seed: int
) -> tuple[list[dict], Counter]:
    """One generator pair per sample of one of ``tasks``; the others are counted in the
    returned Counter as ``<task>:not_a_collection_task``."""
    rng = random.Random(f"{seed}:collect")
    skipped: Counter = Counter()
    rows = []
    for s in samples:
        if s.task not in tasks:
            skipped[f"{s.task}:not_a_collection_task"] += 1
            continue
        template_id, text = instruction(s.task, rng, tau[s.task])
        rows.append(
            {
                "image_id": s.image_id,
                "image": s.image,
                "task": s.task,
                "template_id": template_id,
                "instruction": text,
                "target": get_task(s.task).serialize(s.turns),
                "kinds": [t.kind for t in s.turns],
                "dataset": s.dataset,
                "source_id": s.source_id,
            }
        )
    return rows, skipped


def labeled_plain_rows(samples: Iterable[Sample], tasks: list[str]) -> list[dict]:
    """Each sample of ``tasks`` as a plain conversation in its downstream form (the role of
    the answering data the base model learns from)."""
    rows = []
    for s in samples:
        if s.task not in tasks:
            continue
        turns = get_task(s.task).conversation(s.turns)
        kinds = [t.kind for t in s.turns]
        rows.append(
            {
                "image_id": s.image_id,
                "image": s.image,
                "turns": [[q, a] for q, a in turns],
                "kinds": (kinds + kinds[-1:] * len(turns))[: len(turns)],
            }
        )
    return rows


def kind_shares(rows: Iterable[dict]) -> dict[str, float]:
    counts = Counter(k for r in rows for k in r["kinds"])
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in sorted(counts.items())}


def tokenizer_corpus(pairs: list[dict], plain: list[dict]) -> list[str]:
    """Every text the models will read or write, so common words become single tokens."""
    corpus = list(GENERIC_INSTRUCTIONS) + list(TASK_SUFFIX.values()) + [MC_ANSWER_HINT]
    corpus += [chat_prompt([(r["instruction"], r["target"])]) for r in pairs]
    for r in plain[:2000]:
        corpus.append(chat_prompt([tuple(t) for t in r["turns"]]))
        corpus += [judge_prompt(QA(q, a)) + " Yes No" for q, a in r["turns"]]
    return corpus


def read_plain(folder: Path) -> list[dict]:
    return list(read_jsonl(folder / PLAIN))


def effective_tau(collection) -> dict[str, float]:
    """Each task's tau (its generic-instruction-only share): ``tau_all``, when set, for every
    task (the tau ablation's one knob), else the per-task ``tau`` dict."""
    if collection.tau_all is None:
        return {k: float(v) for k, v in collection.tau.items()}
    return {t: float(collection.tau_all) for t in collection.tasks}


def collection_pairs(
    ctx: RunContext, world: Path, tau: dict[str, float]
) -> tuple[list[dict], Counter]:
    """The generator's training pairs at ``tau``: from the world's converted samples
    (``world=collection``), else drawn from the built-in world's scenes."""
    c = ctx.cfg.generator.collection
    samples = read_samples(world)
    if samples is not None:
        return labeled_pairs(samples, list(c.tasks), tau, ctx.seed)
    images = world_splits(world)["collection"]
    return generator_pairs(images, list(c.tasks), dict(c.share), tau, ctx.seed)


def collect_plain(ctx: RunContext, world: Path) -> list[dict]:
    """The plain conversations the base model learns to answer."""
    c = ctx.cfg.generator.collection
    samples = read_samples(world)
    if samples is not None:
        return labeled_plain_rows(samples, list(c.tasks))
    tasks = list(c.plain_tasks) if c.plain_tasks else None
    return plain_rows(world_splits(world)["collection"], ctx.seed, "plain", tasks, c.plain_per_task)


class Collect(Stage):
    name, version, phase = "collect", 5, "train_generator"
    reads = {"world": "world"}

    def key(self, ctx: RunContext) -> dict:
        """Everything of the collection config but ``tau_all`` (the ``pairs`` stage's knob:
        a tau sweep re-uses the tokenizer and the base model) and ``plain_per_task`` when
        there are no ``plain_tasks`` to draw per task."""
        key = dict(to_plain(ctx.cfg.generator.collection))
        key.pop("tau_all", None)
        if not key.get("plain_tasks"):
            key.pop("plain_per_task", None)
        return {"collection": key, "seed": ctx.seed, "vocab_size": ctx.cfg.generator.vocab_size}

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        c = ctx.cfg.generator.collection
        world = inputs["world"].path
        pairs, skipped = collection_pairs(ctx, world, {k: float(v) for k, v in c.tau.items()})
        plain = collect_plain(ctx, world)
        write_jsonl(folder / PLAIN, plain)
        tok = build_tokenizer(tokenizer_corpus(pairs, plain), ctx.cfg.generator.vocab_size)
        save_tokenizer(tok, folder / "tokenizer")
        return {
            "pairs": len(pairs),
            "plain": len(plain),
            "skipped": dict(skipped),
            "kind_shares": kind_shares(pairs),
            "kind_shares_by_task": {
                t: kind_shares(p for p in pairs if p["task"] == t) for t in c.tasks
            },
            "task_counts": {t: sum(p["task"] == t for p in pairs) for t in c.tasks},
        }
