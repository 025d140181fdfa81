"""Original LLaVA-1.5 release (``liuhaotian/llava-v1.5-7b`` layout) -> the project's format.

The release folder holds a ``LlavaLlamaForCausalLM`` state dict (Llama keys ``model.*`` and
``lm_head.weight`` plus ``model.mm_projector.0/2.*``), a config with ``mm_vision_tower``,
``mm_projector_type``, ``mm_hidden_size``, ``mm_vision_select_layer`` and a tokenizer. The
CLIP tower (``openai/clip-vit-large-patch14-336``) is a separate transformers CLIP folder.
"""

from __future__ import annotations

import os

from genixer.models.llava.convert_original import convert_to_project, read_original_config
from genixer.models.weights import TensorSource

PROJECTORS = ("mlp2x_gelu", "linear")


def convert_llava_original(
    source: str | os.PathLike,
    *,
    vision_tower: str | os.PathLike,
    out: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    dtype: str | None = None,
    max_shard_bytes: int = 5 * 2**30,
) -> dict:
    """Convert the release in ``source`` (tower config + weights from ``vision_tower``)."""
    orig = read_original_config(source)
    projector = orig.get("mm_projector_type", "linear")  # LLaVA v1's default was linear
    if projector not in PROJECTORS:
        raise ValueError(f"mm_projector_type {projector!r} is not supported ({PROJECTORS})")
    tensors = TensorSource(source)
    return convert_to_project(
        kind="llava-original",
        keys=tensors.keys(),
        get=tensors.get,
        shape=tensors.shape,
        orig_config=orig,
        projector_type=projector,
        tower_dir=vision_tower,
        tokenizer_dir=tokenizer or source,
        out=out,
        dtype=dtype,
        max_shard_bytes=max_shard_bytes,
        provenance={"source": str(source), "mm_vision_tower": orig.get("mm_vision_tower")},
    )
