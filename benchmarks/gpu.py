"""GPU section (only where ``torch.cuda.is_available()``): the LLaVA-1.5-7B architecture with
random weights, built directly on the GPU in bf16, generated tokens/s at batch 1, 16 and 64
with a fixed number of new tokens: transformers' ``generate`` vs our generate stage (and
vLLM's engine with dummy weights, where vLLM is installed).

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

from benchmarks.env import BenchEnv, ban_tokens
from benchmarks.generation import _encode, _hf_generate, decoding, requests
from benchmarks.harness import Row, skipped_row
from genixer.core.chat import IMAGE_TOKEN
from genixer.models.llava.model import GenixerVLM, GenixerVLMConfig, num_image_tokens, processor_for

BATCH_SIZES = (1, 16, 64)
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


def build_on(config: GenixerVLMConfig, device: str, dtype: torch.dtype) -> GenixerVLM:
    """The model with random weights, allocated directly on ``device`` in ``dtype``."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = GenixerVLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


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


def _timed(fn, device: str) -> float:
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


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


def stage_vs_hf_rows(
    env: BenchEnv,
    config,
    max_new_tokens: int,
    reps: int,
    device: str = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    trainer_cfg: dict | None = None,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
) -> list[Row]:
    """One row per batch size: our stage vs HF ``generate`` on ``config`` built on ``device``
    (the CPU and a tiny config work too, which is how this path is checked without a GPU)."""
    model = build_on(config, device, dtype)
    processor = processor_for(model, env.tokenizer, max_length=4096)
    n_vocab = len(env.tokenizer)
    hook = ban_tokens(model, [processor.eos_id, *range(n_vocab, config.text_config.vocab_size)])
    dec = decoding(env, max_new_tokens)
    reqs = requests(env, max(max(batch_sizes), 4))
    rows = []
    try:
        for b in batch_sizes:
            n = max(b, 4)

            def hf(b=b, n=n):
                for s in range(0, n, b):
                    batch = _encode(processor, env.root, reqs[s : s + b])
                    batch = {k: v.to(device) for k, v in batch.items()}
                    batch["pixel_values"] = batch["pixel_values"].to(dtype)
                    with torch.inference_mode():
                        _hf_generate(model, processor, batch, dec)

            def ours(b=b, n=n):
                return _run_stage_gpu(env, model, processor, reqs[:n], dec, b, trainer_cfg)

            hf()  # warm-up
            ours()
            t_hf, t_ours = [], []
            for _ in range(reps):
                t_ours.append(_timed(ours, device))
                t_hf.append(_timed(hf, device))
            work = n * max_new_tokens
            rows.append(
                Row(
                    f"gpu: {_arch(config)} generation at batch {b}: our stage vs HF generate",
                    statistics.median(work / t for t in t_ours),
                    statistics.median(work / t for t in t_hf),
                    None,
                    UNIT,
                    note=f"{n} images, {max_new_tokens} new tokens, {dtype}, {_device_name(device)}",
                    extra={"seconds_ours": t_ours, "seconds_hf": t_hf},
                )
            )
    finally:
        hook.remove()
    return rows


def gpu_rows(env: BenchEnv, max_new_tokens: int, reps: int) -> list[Row]:
    if not torch.cuda.is_available():
        return [skipped_row(NAME, UNIT, "no CUDA device on this machine")]
    config = llava_7b_config(env.tokenizer)
    rows = stage_vs_hf_rows(env, config, max_new_tokens, reps, trainer_cfg=gpu_trainer_cfg())
    torch.cuda.empty_cache()
    vllm_name = "gpu: 7B generation: vLLM vs HF generate"
    if importlib.util.find_spec("vllm") is None:
        return [*rows, skipped_row(vllm_name, UNIT, "vLLM not installed")]
    dec = decoding(env, max_new_tokens)
    try:
        v_rates = _vllm_rates(env, config, requests(env, max(BATCH_SIZES)), dec, reps)
    except Exception as err:  # an optional extra in its own environment: report, don't die
        return [*rows, skipped_row(vllm_name, UNIT, f"vLLM failed: {err!r}"[:300])]
    for b, row in zip(BATCH_SIZES, list(rows), strict=True):
        rows.append(
            Row(
                f"gpu: 7B generation at batch {b}: vLLM (dummy weights) vs HF generate",
                v_rates[b],
                row.baseline,
                None,
                UNIT,
            )
        )
    return rows


def _run_stage_gpu(env, model, processor, reqs, dec, batch_size, trainer_cfg) -> dict:
    from genixer.pipeline.stages import generate as G

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
    )


def check_config(tokenizer) -> int:
    """Parameter count of the 7B architecture, built on the meta device (no memory)."""
    model = build_on(llava_7b_config(tokenizer), "meta", torch.bfloat16)
    return sum(p.numel() for p in model.parameters())
