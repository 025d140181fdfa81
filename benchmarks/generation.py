"""Generation: our batched generate stage against one image at a time (the original code's
way) and against a bare batched ``model.generate`` loop; and how its time scales with the
number of images.

Every path runs the same model on the same requests (same images, same instructions) and
makes the same number of new tokens per image: ``</s>`` is banned at the model's output
(:func:`benchmarks.env.ban_tokens`), so no row stops early.
"""

from __future__ import annotations

import json
import statistics

import torch

from benchmarks.env import BenchEnv, ban_tokens
from benchmarks.harness import Row, interleave, throughput_row, timed
from genixer.pipeline.stages import generate as G
from genixer.world.base import load_image


def requests(env: BenchEnv, n: int) -> list[dict]:
    """One generation request per pool image (task-agnostic instructions, as the quickstart)."""
    pool = env.splits["pool"]
    if n > len(pool):
        raise ValueError(f"asked for {n} images but the world's pool has {len(pool)}")
    return G.requests(pool[:n], 1, "generic", str(env.cfg.generator.name), env.seed)


def decoding(env: BenchEnv, max_new_tokens: int) -> dict:
    g = env.cfg.generate
    return {
        "temperature": float(g.temperature),
        "max_new_tokens": int(max_new_tokens),
        "top_p": g.top_p,
    }


def run_stage(env: BenchEnv, model, processor, reqs, dec: dict, batch_size: int) -> dict:
    """Our generate stage through its public function, into a fresh output folder."""
    return G.run_generation(
        model,
        processor,
        reqs,
        world=env.root,
        folder=env.scratch("stage"),
        decoding=dec,
        batch_size=batch_size,
        shard_size=int(env.cfg.generate.shard_size),
    )


def _hf_generate(model, processor, batch: dict, dec: dict) -> torch.Tensor:
    """Plain transformers sampling, as a user (or the original code) would call it."""
    kwargs = {"do_sample": True, "temperature": dec["temperature"]}
    if dec["temperature"] <= 0:
        kwargs = {"do_sample": False}
    if dec.get("top_p") is not None:
        kwargs["top_p"] = dec["top_p"]
    return model.generate(
        **batch,
        max_new_tokens=dec["max_new_tokens"],
        num_beams=1,
        use_cache=True,
        eos_token_id=processor.eos_id,
        pad_token_id=processor.pad_id,
        **kwargs,
    )


def _encode(processor, root, reqs: list[dict]) -> dict:
    items = [
        processor.encode(load_image(root, r["image"]), [(r["instruction"], None)], generation=True)
        for r in reqs
    ]
    return processor.collate(items, padding_side="left")


@torch.inference_mode()
def one_at_a_time(env: BenchEnv, model, processor, reqs: list[dict], dec: dict) -> list[str]:
    """The original code's loop: one image, one ``generate`` call, one answer line appended."""
    out_path = env.scratch("one-at-a-time") / "answers.jsonl"
    texts = []
    with open(out_path, "w") as f:
        for r in reqs:
            batch = _encode(processor, env.root, [r])
            out = _hf_generate(model, processor, batch, dec)
            text = processor.decode(out[0, batch["input_ids"].shape[1] :])
            f.write(json.dumps({"question_id": r["id"], "text": text}) + "\n")
            texts.append(text)
    return texts


@torch.inference_mode()
def bare_batched(env: BenchEnv, model, processor, reqs: list[dict], dec: dict, batch_size: int):
    """What a user writes without our pipeline: batches straight into ``model.generate``
    (one global sampling RNG, no per-record seeds, no shards, nothing written)."""
    texts: list[str] = []
    for start in range(0, len(reqs), batch_size):
        batch = _encode(processor, env.root, reqs[start : start + batch_size])
        out = _hf_generate(model, processor, batch, dec)
        texts += [processor.decode(row) for row in out[:, batch["input_ids"].shape[1] :]]
    return texts


def generation_rows(env: BenchEnv, n_images: int, max_new_tokens: int, reps: int) -> list[Row]:
    model, processor = env.generator()
    hook = ban_tokens(model, [processor.eos_id])
    try:
        reqs = requests(env, n_images)
        dec = decoding(env, max_new_tokens)
        batch_size = int(env.cfg.generate.batch_size)
        # Warm-up of each path on a few requests (first calls allocate and build caches).
        info = run_stage(env, model, processor, reqs[:batch_size], dec, batch_size)
        if info["generated"] != min(batch_size, n_images):
            raise RuntimeError(f"the generation stage's warm-up returned {info}")
        one_at_a_time(env, model, processor, reqs[:4], dec)
        bare_batched(env, model, processor, reqs[:batch_size], dec, batch_size)
        times = interleave(
            {
                "ours": lambda: run_stage(env, model, processor, reqs, dec, batch_size),
                "one": lambda: one_at_a_time(env, model, processor, reqs, dec),
                "bare": lambda: bare_batched(env, model, processor, reqs, dec, batch_size),
            },
            reps,
            warmup=0,
        )
    finally:
        hook.remove()
    what = f"{n_images} images, {max_new_tokens} new tokens, T={dec['temperature']}"
    return [
        throughput_row(
            "generation: batched stage vs one image at a time",
            n_images,
            n_images,
            times["ours"],
            times["one"],
            10.0,
            "images/s",
            f"{what}; stage batch {batch_size}",
        ),
        throughput_row(
            "generation: stage vs bare batched model.generate",
            n_images,
            n_images,
            times["ours"],
            times["bare"],
            0.85,
            "images/s",
            f"{what}; both batch {batch_size}",
        ),
    ]


def scaling_rows(env: BenchEnv, n: int, max_new_tokens: int, reps: int) -> list[Row]:
    """Stage time over n, 4n and 16n images: rows compare k * t(n) with t(k n)."""
    model, processor = env.generator()
    hook = ban_tokens(model, [processor.eos_id])
    sizes = (n, 4 * n, 16 * n)
    try:
        reqs = requests(env, 16 * n)
        dec = decoding(env, max_new_tokens)
        batch_size = min(int(env.cfg.generate.batch_size), n)  # N = one full batch
        run_stage(env, model, processor, reqs[:n], dec, batch_size)  # warm-up
        times: dict[int, list[float]] = {k: [] for k in sizes}
        for _ in range(reps):
            for k in sizes:
                times[k].append(
                    timed(lambda k=k: run_stage(env, model, processor, reqs[:k], dec, batch_size))
                )
    finally:
        hook.remove()
    t1 = statistics.median(times[n])
    rows = []
    for mult in (4, 16):
        tk = statistics.median(times[mult * n])
        rows.append(
            Row(
                f"scaling: stage time at {mult}N vs {mult} x time at N",
                tk,
                mult * t1,
                0.8,
                "s",
                ratio=mult * t1 / tk,
                note=f"N={n} images, batch {batch_size}, {max_new_tokens} new tokens",
                extra={f"seconds_at_{k}": v for k, v in times.items() if k in (n, mult * n)},
            )
        )
    return rows
