"""Scoring: the Fuyu judge's batched one-forward P(Yes) against the original code's sampled
per-sample score, and CLIP crop scoring in batches against one crop at a time."""

from __future__ import annotations

import random

from benchmarks.env import BenchEnv, ban_tokens
from benchmarks.harness import Row, interleave, throughput_row
from genixer.core.record import QA
from genixer.models.clip.model import clip_tokenizer
from genixer.models.clip.scorer import CropScorer
from genixer.models.fuyu.scoring import sampled_score
from genixer.models.judging import yes_probability
from genixer.tasks.base import judge_prompt
from genixer.world.base import load_image
from genixer.world.questions import KINDS, random_question
from genixer.world.referring import expressions


def judge_items(env: BenchEnv, n: int) -> list:
    """``n`` (image, judge prompt) pairs: world questions with true or wrong answers."""
    rng = random.Random(f"{env.seed}:bench-judge")
    kinds = tuple(k.name for k in KINDS)
    images = env.splits["judge"]
    items = []
    while len(items) < n:
        img = images[len(items) % len(images)]
        _, question, truth = random_question(img.scene, rng, kinds)
        answer = truth if truth is not None else "yes"
        items.append((load_image(env.root, img), judge_prompt(QA(question, answer))))
    return items


def judge_row(env: BenchEnv, n: int, reps: int) -> Row:
    """Batched P(Yes) (``filter.batch_size``) vs sampled scoring, one sample at a time.

    The sampled baseline is given its most favourable case: a trained judge answers
    ``Yes</s>``, i.e. two forward passes per sample (the prompt, then the sampled word). With
    ``</s>`` banned and ``max_new_tokens=1`` the random judge makes exactly those two passes.
    """
    model, processor = env.judge()
    hook = ban_tokens(model, [processor.eos_id])
    f = env.cfg.filter
    items = judge_items(env, n)
    try:
        yes_probability(model, processor, items[:8], int(f.batch_size))  # warm-up
        sampled_score(model, processor, items[:4], seed=env.seed, max_new_tokens=1)
        times = interleave(
            {
                "ours": lambda: yes_probability(
                    model, processor, items, int(f.batch_size), renormalize=bool(f.renormalize)
                ),
                "sampled": lambda: sampled_score(
                    model, processor, items, seed=env.seed, max_new_tokens=1
                ),
            },
            reps,
            warmup=0,
        )
    finally:
        hook.remove()
    return throughput_row(
        "judge: batched P(Yes) vs sampled per-sample score",
        n,
        n,
        times["ours"],
        times["sampled"],
        20.0,
        "samples/s",
        f"{n} samples; batch {int(f.batch_size)}; sampled: top-k 10, top-p 0.95, 2 forwards each",
    )


def clip_items(env: BenchEnv, n: int) -> list:
    """``n`` (image, normalized box, expression) triples: the world's unique expressions."""
    items = []
    for img in env.splits["judge"]:
        image = load_image(env.root, img)
        for text, obj in expressions(img.scene):
            items.append((image, img.scene.norm_box(obj), text))
    if not items:
        raise ValueError("the world's judge split has no referring expressions")
    return [items[i % len(items)] for i in range(n)]


def clip_row(env: BenchEnv, n: int, reps: int) -> Row:
    model, clip_cfg = env.clip()
    spec = clip_cfg.model.spec
    scorer = CropScorer(
        model,
        clip_tokenizer(int(spec.context_length)),
        int(spec.image_size),
        min_crop_px=int(clip_cfg.min_crop_px),
        mode=str(clip_cfg.score_mode),
    )
    items = clip_items(env, n)
    batch_size = int(clip_cfg.batch_size)
    scorer.score(items[:16], batch_size=batch_size)  # warm-up
    scorer.score(items[:4], batch_size=1)
    scored = sum(s is not None for s in scorer.score(items, batch_size=batch_size))
    times = interleave(
        {
            "ours": lambda: scorer.score(items, batch_size=batch_size),
            "one": lambda: scorer.score(items, batch_size=1),
        },
        reps,
        warmup=0,
    )
    return throughput_row(
        "clip: batched crops vs one crop at a time",
        n,
        n,
        times["ours"],
        times["one"],
        10.0,
        "crops/s",
        f"{n} crops ({scored} scored, the rest too small); batch {batch_size}",
    )
