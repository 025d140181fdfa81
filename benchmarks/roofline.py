"""What the hardware allows: FLOP and byte counts of generation and judging, and the two
rates they are divided by, measured on the device itself (a large bf16 GEMM, a large
device-to-device copy).

The estimate of one batch is ``prefill FLOPs / matmul rate + decode bytes / copy
bandwidth``: the prefill (vision tower, projector, the prompt through the language model) is
compute-bound, each decode step memory-bound (it reads every weight of the language model
and the KV cache once). Only matrix products are counted (weights and attention scores;
not norms, biases, activations or softmax), and attention as if it were not causal (what
the SDPA kernels compute for a padded batch): ``torch.utils.flop_counter`` counts the same,
which is how the tests check these functions.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from genixer.models.llava.model import GenixerVLM


@dataclass(frozen=True)
class Dims:
    """A transformer stack's sizes. ``mlp_matrices``: 3 for a gated MLP (Llama), 2 for a
    plain one (CLIP, Persimmon); ``vocab``: the output head's rows (0: none)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    mlp_matrices: int
    vocab: int = 0

    def layer_params(self) -> int:
        """Weights of one layer's matrix products (q, k, v, o and the MLP)."""
        kv = self.kv_heads * (self.hidden // self.heads)
        return (
            2 * self.hidden * self.hidden
            + 2 * self.hidden * kv
            + (self.mlp_matrices * self.hidden * self.intermediate)
        )

    def forward_flops(self, batch: int, seq: int, head_positions: int = 1) -> float:
        """One forward over ``batch`` sequences of ``seq`` tokens; the output head runs at
        ``head_positions`` positions of each (1: generation's prefill and the judge)."""
        per_layer = 2 * batch * seq * self.layer_params() + 4 * batch * seq * seq * self.hidden
        return self.layers * per_layer + 2 * batch * head_positions * self.vocab * self.hidden

    def weight_bytes(self, dtype_bytes: int = 2) -> float:
        """Bytes of the weights a forward reads (the embedding table is looked up, not read)."""
        return dtype_bytes * (self.layers * self.layer_params() + self.vocab * self.hidden)

    def kv_bytes(self, batch: int, length: int, dtype_bytes: int = 2) -> float:
        """Bytes of the KV cache of ``length`` positions."""
        head_dim = self.hidden // self.heads
        return 2 * self.layers * batch * length * self.kv_heads * head_dim * dtype_bytes


@dataclass(frozen=True)
class VLM:
    """A LLaVA-style model: a vision tower over ``vision_seq`` positions (patches + class
    token) whose ``image_tokens`` outputs go through the projector into the language model."""

    lm: Dims
    vision: Dims
    vision_seq: int
    patch_params: int  # the patch embedding's weights (per patch)
    projector_params: int  # the projector's weights (per image token)
    image_tokens: int


def llama_dims(text_config) -> Dims:
    c = text_config
    kv = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    return Dims(
        c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads, kv, 3,
        c.vocab_size,
    )  # fmt: skip


def llava_dims(config) -> VLM:
    """The sizes of a GenixerVLM / LLaVA config (projector: 2-layer MLP or one linear)."""
    v, lm = config.vision_config, llama_dims(config.text_config)
    patches = (v.image_size // v.patch_size) ** 2
    vision = Dims(
        v.num_hidden_layers, v.hidden_size, v.intermediate_size, v.num_attention_heads,
        v.num_attention_heads, 2,
    )  # fmt: skip
    projector = v.hidden_size * lm.hidden
    if getattr(config, "projector_type", "mlp2x_gelu") == "mlp2x_gelu":
        projector += lm.hidden * lm.hidden
    return VLM(lm, vision, patches + 1, 3 * v.patch_size**2 * v.hidden_size, projector, patches)


def fuyu_dims(config) -> tuple[Dims, int]:
    """A Fuyu judge's decoder (Persimmon: plain squared-ReLU MLP) and its patch embedding's
    weights (one linear layer per patch)."""
    c = config.text_config
    lm = Dims(
        c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
        c.num_attention_heads, 2, c.vocab_size,
    )  # fmt: skip
    return lm, config.num_channels * config.patch_size**2 * c.hidden_size


def prefill_flops(m: VLM, batch: int, prompt_len: int) -> float:
    """The vision tower, the projector and the prompt (``prompt_len`` positions, image
    tokens included) through the language model, whose head runs at the last position."""
    patches = m.vision_seq - 1
    return (
        2 * batch * patches * m.patch_params
        + m.vision.forward_flops(batch, m.vision_seq, head_positions=0)
        + 2 * batch * m.image_tokens * m.projector_params
        + m.lm.forward_flops(batch, prompt_len)
    )


def decode_bytes(
    m: VLM, batch: int, prompt_len: int, new_tokens: int, dtype_bytes: int = 2
) -> float:
    """Bytes read by the decode steps: the prefill makes the first new token, and step
    ``k`` (1 .. new_tokens - 1) reads the weights and a cache of ``prompt_len + k - 1``."""
    return sum(
        m.lm.weight_bytes(dtype_bytes) + m.lm.kv_bytes(batch, prompt_len + k - 1, dtype_bytes)
        for k in range(1, new_tokens)
    )


def judge_flops(lm: Dims, patch_params: int, patches: int, batch: int, seq: int) -> float:
    """One judge forward (Fuyu: a linear patch embedding, then the decoder over ``seq``
    positions, image included; P(Yes) reads the head at the last position)."""
    return 2 * batch * patches * patch_params + lm.forward_flops(batch, seq)


def roofline_seconds(flops: float, nbytes: float, matmul_rate: float, bandwidth: float) -> float:
    return flops / matmul_rate + nbytes / bandwidth


def _median_seconds(fn, device: torch.device, reps: int) -> float:
    fn()  # warm-up (kernel selection, allocation)
    return statistics.median(timed_on(fn, str(device)) for _ in range(reps))


def matmul_rate(device: str, n: int = 8192, dtype=torch.bfloat16, reps: int = 5) -> float:
    """FLOP/s of an ``n x n`` by ``n x n`` product on ``device`` (2 n^3 FLOPs each)."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    return 2 * n**3 / _median_seconds(lambda: a @ b, dev, reps)


def copy_bandwidth(device: str, nbytes: int = 2 << 30, reps: int = 5) -> float:
    """Bytes/s of a device-to-device copy of ``nbytes``, counting what is read and what is
    written (2 x nbytes per copy), as copy bandwidth is quoted."""
    dev = torch.device(device)
    src = torch.empty(nbytes, dtype=torch.uint8, device=dev).fill_(1)
    dst = torch.empty_like(src)
    return 2 * nbytes / _median_seconds(lambda: dst.copy_(src), dev, reps)


@dataclass
class Bench:
    """Where and how the GPU rows run, and the device's rates the roofline divides by
    (measured by :func:`measure`; FLOP/s of a large GEMM, bytes/s of a large copy)."""

    device: str = "cuda"
    dtype: torch.dtype = torch.bfloat16
    trainer_cfg: dict | None = None
    reps: int = 5
    matmul: float = 0.0
    copy: float = 0.0


def measure(bench: Bench, gemm_n: int = 8192, copy_bytes: int = 2 << 30) -> Bench:
    bench.matmul = matmul_rate(bench.device, gemm_n, bench.dtype, bench.reps)
    bench.copy = copy_bandwidth(bench.device, copy_bytes, bench.reps)
    return bench


def build_on(config, device: str, dtype: torch.dtype, cls=GenixerVLM):
    """The model (``cls``) with random weights, allocated directly on ``device`` in
    ``dtype``: a 7B model never exists in float32 or on the CPU."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def timed_on(fn, device: str) -> float:
    """Seconds of one call, with the device's queue drained before and after."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start
