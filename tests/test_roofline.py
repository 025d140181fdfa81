"""The GPU benchmark's roofline arithmetic (``benchmarks/roofline.py``): FLOP and byte
counts by hand on a tiny config and against torch's own FLOP counter on real tiny models;
the 7B / 8B architectures' weights; the GPU rows' code path run on the CPU. Timings are
never asserted."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import roofline as R
from benchmarks.env import make_env
from benchmarks.gpu import llava_7b_config, stage_vs_hf_rows
from benchmarks.gpu_judge import fuyu_8b_config, judge_row
from tests.test_benchmarks import check_row

# 2 layers, width 4, MLP 8, 2 heads of 2, 1 KV head (grouped), gated MLP, vocabulary 10.
TINY = R.Dims(layers=2, hidden=4, intermediate=8, heads=2, kv_heads=1, mlp_matrices=3, vocab=10)


def test_counts_of_a_tiny_stack_by_hand():
    # q, o: 4x4 each = 32; k, v: 4x2 each = 16; MLP: 3 x 4x8 = 96.
    assert TINY.layer_params() == 144
    # batch 3 of 5 tokens: 2 layers x (2*15*144 matmul + 4*3*25*4 attention) + head 2*3*10*4
    assert TINY.forward_flops(3, 5) == 2 * (4320 + 1200) + 240
    assert TINY.forward_flops(3, 5, head_positions=0) == 11040
    assert TINY.weight_bytes(2) == 2 * (2 * 144 + 40)
    # K and V, 2 layers, batch 3, 7 positions, one head of 2, 2 bytes
    assert TINY.kv_bytes(3, 7, 2) == 2 * 2 * 3 * 7 * 1 * 2 * 2


def test_decode_bytes_and_roofline_seconds_by_hand():
    m = R.VLM(TINY, TINY, vision_seq=5, patch_params=6, projector_params=16, image_tokens=4)
    # 3 new tokens: the prefill makes the first; steps read caches of 7 and 8 positions.
    expected = 2 * TINY.weight_bytes(2) + TINY.kv_bytes(1, 7, 2) + TINY.kv_bytes(1, 8, 2)
    assert R.decode_bytes(m, 1, 7, 3, 2) == expected
    assert R.decode_bytes(m, 1, 7, 1, 2) == 0
    # vision: 4 patches x 6 weights, tower over 5 positions, projector over 4 image tokens
    assert R.prefill_flops(m, 1, 7) == (
        2 * 4 * 6 + TINY.forward_flops(1, 5, 0) + 2 * 4 * 16 + TINY.forward_flops(1, 7)
    )
    assert R.roofline_seconds(4e12, 2e9, 1e12, 1e9) == pytest.approx(6.0)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_env(tmp_path_factory.mktemp("roofline"), pool=4, judge=4, collection=20)


def counted(model: nn.Module, **inputs) -> int:
    model.set_attn_implementation("eager")  # SDPA on the CPU is not counted by torch
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(**inputs, logits_to_keep=1)
    return counter.get_total_flops()


def test_prefill_flops_match_torchs_count_on_a_real_tiny_llava(env):
    model, _ = env.generator()
    dims = R.llava_dims(model.config)
    batch, length = 2, dims.image_tokens + 6
    ids = torch.full((batch, length), 5)
    ids[:, : dims.image_tokens] = model.config.image_token_index
    size = model.config.vision_config.image_size
    flops = counted(model, input_ids=ids, pixel_values=torch.randn(batch, 3, size, size))
    assert flops == R.prefill_flops(dims, batch, length)


def test_judge_flops_match_torchs_count_on_a_real_tiny_fuyu(env):
    model, processor = env.judge()
    from PIL import Image

    items = [(Image.new("RGB", (20, 30), "red"), "Is it red?")] * 2
    batch = processor.collate([processor.encode(im, pr) for im, pr in items], "left")
    lm, patch_params = R.fuyu_dims(model.config)
    patches = (model.config.image_size // model.config.patch_size) ** 2
    seq = batch["input_ids"].shape[1]
    assert counted(model, **batch) == R.judge_flops(lm, patch_params, patches, 2, seq)


def linear_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def test_the_7b_and_8b_architectures_weights_are_what_the_roofline_reads(env):
    llava = R.build_on(llava_7b_config(env.tokenizer), "meta", torch.bfloat16)
    lm = R.llava_dims(llava.config).lm
    language = linear_weights(llava.model.language_model) + llava.lm_head.weight.numel()
    assert lm.weight_bytes(2) == 2 * language
    assert 13.0e9 < lm.weight_bytes(2) < 13.6e9  # Vicuna-7B in bf16, embeddings aside
    config = fuyu_8b_config(env.tokenizer)
    fuyu = R.build_on(config, "meta", torch.bfloat16, cls=type(env.judge()[0]))
    assert 9.2e9 < sum(p.numel() for p in fuyu.parameters()) < 9.5e9  # Fuyu-8B: 9.4B
    dims, patch_params = R.fuyu_dims(config)
    assert dims.weight_bytes(1) + patch_params == linear_weights(fuyu)


def test_the_gpu_rows_run_on_the_cpu_with_tiny_models(env):
    bench = R.measure(R.Bench("cpu", torch.float32, reps=1), gemm_n=64, copy_bytes=1 << 16)
    assert bench.matmul > 0 and bench.copy > 0
    config = env.generator()[0].config
    rows = stage_vs_hf_rows(env, config, 2, bench, batch_sizes=(1, 2))
    names = [r.name for r in rows]
    assert names == [
        f"gpu: tiny generation at batch {b}: our stage vs {other}"
        for b in (1, 2)
        for other in ("HF generate", "roofline")
    ]
    for row in rows:
        check_row(row.to_json())
    judge = judge_row(env, bench, config=env.judge()[0].config).to_json()
    check_row(judge)
    assert judge["target"] == 0.7 and judge["unit"] == "items/s"
