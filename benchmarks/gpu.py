"""GPU section (only where ``torch.cuda.is_available()``): the LLaVA-1.5-7B architecture with
random weights, built directly on the GPU in bf16, generated tokens/s at batch 1, 16, 64 and
128 with a fixed number of new tokens: our generate stage (``generate.sampler=device``) vs
transformers' ``generate`` and vs the roofline (:mod:`benchmarks.roofline`, from the GEMM rate
and copy bandwidth measured here first); the stage with ``generate.compile`` at batch 64; the
Fuyu-8B judge (:mod:`benchmarks.gpu_judge`); vLLM's engine with dummy weights, if installed.

Sizes are LLaVA-1.5-7B's: CLIP ViT-L/14 at 336 px (24 layers, width 1024; 576 image tokens,
feature layer -2), a 2-layer GELU projector, Vicuna-7B (Llama: 32 layers, width 4096, MLP
11008, 32 heads, vocabulary 32000). The project tokenizer covers the first few hundred ids;
the others are banned at the output (with ``</s>``), so every id generated decodes and every
row makes exactly ``max_new_tokens`` tokens. The ban costs every path alike.
"""

from __future__ import annotations

import importlib.util
import statistics
import time

import torch
from transformers import CLIPVisionConfig, LlamaConfig

from benchmarks import roofline as R
from benchmarks.env import BenchEnv, ban_tokens
from benchmarks.generation import _encode, _hf_generate, decoding, requests
from benchmarks.gpu_judge import judge_row
from benchmarks.harness import Row, skipped_row
from genixer.core.chat import IMAGE_TOKEN
from genixer.models.llava.model import GenixerVLMConfig, num_image_tokens, processor_for

BATCH_SIZES = (1, 16, 64, 128)
UNIT = "tokens/s"
NAME = "gpu: LLaVA-1.5-7B (random weights) tokens/s"


def llava_7b_config(tokenizer) -> GenixerVLMConfig:
    """LLaVA-1.5-7B's architecture (liuhaotian/llava-v1.5-7b) as a GenixerVLM config."""
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
    )
    text = LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        **ids,
    )
    config = GenixerVLMConfig(
        vision_config=vision,
        text_config=text,
        projector_type="mlp2x_gelu",
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        **ids,
    )
    config.image_seq_length = num_image_tokens(config)
    config._attn_implementation = "sdpa"
    return config


def _arch(config) -> str:
    return "7B" if config.text_config.hidden_size == 4096 else "tiny"


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return device


def gpu_trainer_cfg() -> dict:
    """The Lightning trainer our stage runs under on one GPU (the model stays bf16)."""
    return {
        "_target_": "lightning.Trainer",
        "accelerator": "gpu",
        "devices": 1,
        "precision": "bf16-true",
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }


def _vllm_rates(env: BenchEnv, config, reqs, dec: dict, reps: int) -> dict[int, float]:
    """vLLM engine with dummy (random) weights on the same architecture; tokens/s per batch."""
    import json

    from vllm import LLM, SamplingParams

    from genixer.world.base import load_image

    folder = env.scratch("vllm-7b")
    cfg = config.to_dict()
    cfg.pop("projector_type", None)
    cfg["model_type"] = "llava"
    cfg["architectures"] = ["LlavaForConditionalGeneration"]
    (folder / "config.json").write_text(json.dumps(cfg))
    env.tokenizer.save_pretrained(str(folder))
    llm = LLM(
        model=str(folder),
        tokenizer=str(folder),
        load_format="dummy",
        dtype="bfloat16",
        max_model_len=2048,
        trust_remote_code=False,
        seed=0,
    )
    params = SamplingParams(
        temperature=dec["temperature"],
        max_tokens=dec["max_new_tokens"],
        ignore_eos=True,
        detokenize=False,
    )
    from genixer.core.chat import prompt

    rates = {}
    for b in BATCH_SIZES:
        n = max(b, 4)
        inputs = [
            {
                "prompt": prompt([(r["instruction"], None)]),
                "multi_modal_data": {"image": load_image(env.root, r["image"])},
            }
            for r in reqs[:n]
        ]
        llm.generate(inputs[:b], params, use_tqdm=False)  # warm-up
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            for s in range(0, n, b):
                llm.generate(inputs[s : s + b], params, use_tqdm=False)
            times.append(time.perf_counter() - start)
        rates[b] = n * dec["max_new_tokens"] / statistics.median(times)
    return rates


def generation_roofline(
    config, batches: list[tuple[int, int]], max_new_tokens: int, bench: R.Bench
) -> float:
    """Seconds the hardware needs for these batches (their padded prompt lengths) of
    ``max_new_tokens`` each: prefill FLOPs at the GEMM rate + decode bytes at the copy rate."""
    dims, size = R.llava_dims(config), bench.dtype.itemsize
    seconds = 0.0
    for b, length in batches:
        flops = R.prefill_flops(dims, b, length)
        nbytes = R.decode_bytes(dims, b, length, max_new_tokens, size)
        seconds += R.roofline_seconds(flops, nbytes, bench.matmul, bench.copy)
    return seconds


def _timed_pair(ours, hf, bench: R.Bench) -> tuple[list[float], list[float]]:
    hf()  # warm-up
    ours()
    t_ours, t_hf = [], []
    for _ in range(bench.reps):
        t_ours.append(R.timed_on(ours, bench.device))
        t_hf.append(R.timed_on(hf, bench.device))
    return t_ours, t_hf


def _rows_for_batch(name: str, b: int, work: float, times, roofline_s: float) -> list[Row]:
    """Our stage vs HF generate, and our stage vs the roofline (targets at batch 64)."""
    t_ours, t_hf = times
    ours = statistics.median(work / t for t in t_ours)
    hf = statistics.median(work / t for t in t_hf)
    at64 = b == 64
    extra = {"seconds_ours": t_ours, "seconds_hf": t_hf}
    return [
        Row(f"{name}: our stage vs HF generate", ours, hf, 1.2 if at64 else None, UNIT,
            extra=extra),
        Row(f"{name}: our stage vs roofline", ours, work / roofline_s, 0.5 if at64 else None,
            UNIT, note=f"HF generate: {hf * roofline_s / work:.3g} of the roofline"),
    ]  # fmt: skip


def stage_vs_hf_rows(
    env: BenchEnv,
    config,
    max_new_tokens: int,
    bench: R.Bench,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    compile: bool = False,
) -> list[Row]:
    """Per batch size, our stage (``generate.sampler=device``) vs HF ``generate`` and vs the
    roofline, on ``config`` built on ``bench.device`` (the CPU and a tiny config work too,
    which is how this path is checked without a GPU)."""
    model = R.build_on(config, bench.device, bench.dtype)
    processor = processor_for(model, env.tokenizer, max_length=4096)
    n_vocab = len(env.tokenizer)
    hook = ban_tokens(model, [processor.eos_id, *range(n_vocab, config.text_config.vocab_size)])
    dec = decoding(env, max_new_tokens) | {"sampler": "device"}
    reqs = requests(env, max(max(batch_sizes), 4))
    rows = []
    try:
        for b in batch_sizes:
            n = max(b, 4)
            chunks = [reqs[s : s + b] for s in range(0, n, b)]
            encoded = [_to_device(_encode(processor, env.root, c), bench) for c in chunks]

            def hf(encoded=encoded):
                for batch in encoded:
                    with torch.inference_mode():
                        _hf_generate(model, processor, batch, dec)

            def ours(b=b, n=n):
                stage = (env, model, processor, reqs[:n], dec)
                return _run_stage_gpu(stage, b, bench.trainer_cfg, compile)

            times = _timed_pair(ours, hf, bench)
            shapes = [tuple(e["input_ids"].shape) for e in encoded]
            roofline_s = generation_roofline(config, shapes, max_new_tokens, bench)
            name = f"gpu: {_arch(config)} generation at batch {b}" + (", compiled" * compile)
            new = _rows_for_batch(name, b, n * max_new_tokens, times, roofline_s)
            new[0].note = (
                f"{n} images, {max_new_tokens} new tokens, {bench.dtype}, "
                f"{_device_name(bench.device)}"
            )
            rows += new
    finally:
        hook.remove()
    return rows


def _to_device(batch: dict, bench: R.Bench) -> dict:
    batch = {k: v.to(bench.device) for k, v in batch.items()}
    batch["pixel_values"] = batch["pixel_values"].to(bench.dtype)
    return batch


def _optional_rows(name: str, make) -> list[Row]:
    """Rows of a path that may not work on every GPU stack (compilation, vLLM): its failure
    is a skip row with the error, not the end of the section."""
    try:
        return make()
    except Exception as err:
        torch.cuda.empty_cache()
        return [skipped_row(name, UNIT, f"failed: {err!r}"[:300])]


def gpu_rows(env: BenchEnv, max_new_tokens: int, reps: int) -> list[Row]:
    if not torch.cuda.is_available():
        return [skipped_row(NAME, UNIT, "no CUDA device on this machine")]
    bench = R.measure(R.Bench(trainer_cfg=gpu_trainer_cfg(), reps=reps))
    hw = f"measured: {bench.matmul / 1e12:.0f} TFLOP/s bf16 GEMM, {bench.copy / 1e9:.0f} GB/s copy"
    config = llava_7b_config(env.tokenizer)
    rows = stage_vs_hf_rows(env, config, max_new_tokens, bench)
    rows[-1].note += f"; {hw}"
    torch.cuda.empty_cache()
    rows += _optional_rows(
        "gpu: 7B generation at batch 64, compiled",
        lambda: stage_vs_hf_rows(env, config, max_new_tokens, bench, (64,), compile=True),
    )
    torch.cuda.empty_cache()
    rows += _optional_rows("gpu: judge P(Yes)", lambda: [judge_row(env, bench)])
    torch.cuda.empty_cache()
    return rows + _vllm_rows(env, config, max_new_tokens, reps, rows)


def _vllm_rows(env: BenchEnv, config, max_new_tokens: int, reps: int, rows: list[Row]):
    vllm_name = "gpu: 7B generation: vLLM vs HF generate"
    if importlib.util.find_spec("vllm") is None:
        return [skipped_row(vllm_name, UNIT, "vLLM not installed")]
    dec = decoding(env, max_new_tokens)
    try:
        v_rates = _vllm_rates(env, config, requests(env, max(BATCH_SIZES)), dec, reps)
    except Exception as err:  # an optional extra in its own environment: report, don't die
        return [skipped_row(vllm_name, UNIT, f"vLLM failed: {err!r}"[:300])]
    hf = {b: r.baseline for r in rows for b in BATCH_SIZES if r.name.endswith(
        f"batch {b}: our stage vs HF generate")}  # fmt: skip
    return [
        Row(f"gpu: 7B generation at batch {b}: vLLM (dummy weights) vs HF generate",
            v_rates[b], hf[b], None, UNIT)
        for b in BATCH_SIZES
    ]  # fmt: skip


def _run_stage_gpu(stage: tuple, batch_size: int, trainer_cfg, compile: bool) -> dict:
    from genixer.pipeline.stages import generate as G

    env, model, processor, reqs, dec = stage
    return G.run_generation(
        model,
        processor,
        reqs,
        world=env.root,
        folder=env.scratch("stage-gpu"),
        decoding=dec,
        batch_size=batch_size,
        shard_size=10**6,
        trainer_cfg=trainer_cfg,
        compile=compile,
    )


def check_config(tokenizer) -> int:
    """Parameter count of the 7B architecture, built on the meta device (no memory)."""
    model = R.build_on(llava_7b_config(tokenizer), "meta", torch.bfloat16)
    return sum(p.numel() for p in model.parameters())
