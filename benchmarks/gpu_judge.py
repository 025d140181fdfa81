"""GPU section, judge: P(Yes) scoring (one batched forward per batch, ``yes_probability``)
of the Fuyu-8B architecture with random bf16 weights, against the roofline of that forward
(its FLOPs at the measured GEMM rate + its weights read once at the measured copy rate).

Sizes are Fuyu-8B's (adept/fuyu-8b): a Persimmon decoder of 36 layers, width 4096, MLP 16384
(squared ReLU), 64 heads, vocabulary 262144, 30 px patches embedded by one linear layer.
Fuyu reads images at their own resolution; here they are scaled to ``IMAGE_SIZE`` (about
an SBU photo's size: 16 x 16 patches, 272 image positions with the row ends).
"""

from __future__ import annotations

import statistics

from transformers import FuyuConfig, FuyuForCausalLM

from benchmarks import roofline as R
from benchmarks.env import BenchEnv
from benchmarks.harness import Row
from benchmarks.scoring import judge_items
from genixer.models.fuyu.model import special_ids
from genixer.models.fuyu.processor import PATCH_TOKEN, JudgeProcessor, special_token_id
from genixer.models.judging import yes_probability

IMAGE_SIZE, PATCH = 480, 30
JUDGE_BATCH = 64


def fuyu_8b_config(tokenizer, image_size: int = IMAGE_SIZE) -> FuyuConfig:
    """Fuyu-8B's architecture, its special ids taken from the project tokenizer (whose ids
    all lie inside Fuyu's vocabulary)."""
    ids = special_ids(tokenizer)
    text = {
        "model_type": "persimmon",
        "vocab_size": 262144,
        "hidden_size": 4096,
        "intermediate_size": 16384,
        "num_hidden_layers": 36,
        "num_attention_heads": 64,
        "max_position_embeddings": 16384,
        "hidden_act": "relu2",
        "qk_layernorm": True,
        "partial_rotary_factor": 0.5,
        "rope_theta": 25000.0,
        **ids,
    }
    return FuyuConfig(
        image_size=image_size,
        patch_size=PATCH,
        num_channels=3,
        image_token_id=special_token_id(tokenizer, PATCH_TOKEN),
        text_config=text,
        **ids,
    )


def judge_roofline(config: FuyuConfig, batch: int, seq: int, bench: R.Bench) -> float:
    """Seconds of one scoring forward of ``batch`` items padded to ``seq`` positions."""
    lm, patch_params = R.fuyu_dims(config)
    patches = (config.image_size // config.patch_size) ** 2
    flops = R.judge_flops(lm, patch_params, patches, batch, seq)
    return R.roofline_seconds(
        flops, lm.weight_bytes(bench.dtype.itemsize), bench.matmul, bench.copy
    )


def judge_row(env: BenchEnv, bench: R.Bench, config: FuyuConfig | None = None) -> Row:
    """Items/s of ``yes_probability`` at batch 64 vs the roofline (target 0.7)."""
    config = config or fuyu_8b_config(env.tokenizer)
    model = R.build_on(config, bench.device, bench.dtype, cls=FuyuForCausalLM)
    processor = JudgeProcessor.for_model(model, env.tokenizer)
    items = judge_items(env, JUDGE_BATCH)
    seq = processor.collate([processor.encode(im, pr) for im, pr in items], "left")
    seq = seq["input_ids"].shape[1]

    def ours():
        return yes_probability(model, processor, items, batch_size=JUDGE_BATCH)

    ours()  # warm-up
    times = [R.timed_on(ours, bench.device) for _ in range(bench.reps)]
    roofline_s = judge_roofline(config, JUDGE_BATCH, seq, bench)
    arch = "Fuyu-8B" if config.text_config.hidden_size == 4096 else "tiny Fuyu"
    return Row(
        f"gpu: {arch} judge P(Yes) at batch {JUDGE_BATCH} vs roofline",
        statistics.median(JUDGE_BATCH / t for t in times),
        JUDGE_BATCH / roofline_s,
        0.7,
        "items/s",
        note=f"{seq} positions per item, {bench.dtype}, one forward per batch",
        extra={"seconds_ours": times},
    )
