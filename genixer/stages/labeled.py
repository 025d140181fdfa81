"""The collect stage for a world of labeled samples (``world=collection``): the samples the
dataset converters made become generator training pairs (two-level templates, tau share
generic-only) and plain conversations, in the same row layout as the built-in world's
(:mod:`genixer.stages.collect`)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from genixer.datasets import Sample
from genixer.record import read_jsonl
from genixer.tasks import get_task
from genixer.tasks.templates import instruction
from genixer.world.collection import SAMPLES


def read_samples(world_folder: str | Path) -> list[Sample] | None:
    """The world's labeled samples (image paths relative to the world folder), or None for a
    world without them (the built-in world makes its samples from scene graphs)."""
    path = Path(world_folder) / SAMPLES
    if not path.exists():
        return None
    return [Sample.from_dict(d) for d in read_jsonl(path)]


def generator_pairs(
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
        template_id, text = instruction(s.task, rng, tau.get(s.task, 0.0))
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


def plain_rows(samples: Iterable[Sample], tasks: list[str]) -> list[dict]:
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
