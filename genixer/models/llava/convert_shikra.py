"""Shikra's release (``shikras/shikra-7b-delta-v1`` layout) -> the project's format.

Shikra is published as a DELTA: for every weight the base model also has, the real weight is
``delta + base``; the embedding and ``lm_head`` have three more rows than the base (the added
``<im_patch>``, ``<im_start>``, ``<im_end>``), and only their first base-sized rows get the
base added. Weights the base lacks (``model.mm_projector.weight/bias``, a single linear map,
and the CLIP tower when it was saved with the model) are stored as they are. The config names
the tower (``mm_vision_tower``, CLIP ViT-L/14 at 224 px) and sets ``mm_use_im_start_end``.
"""

from __future__ import annotations

import os

import torch

from genixer.models.llava.convert_original import convert_to_project, read_original_config
from genixer.models.weights import TensorSource


class DeltaSource:
    """``get(key)`` = delta + base, computed in float32 and returned in the delta's dtype."""

    def __init__(self, delta: TensorSource, base: TensorSource) -> None:
        self.delta = delta
        self.base = base
        unused = [k for k in base if k not in delta and not k.endswith("inv_freq")]
        if unused:
            raise ValueError(f"{len(unused)} base weights have no delta, e.g. {unused[:3]}")

    def keys(self) -> list[str]:
        return self.delta.keys()

    def shape(self, key: str) -> tuple[int, ...]:
        return self.delta.shape(key)

    def get(self, key: str) -> torch.Tensor:
        d = self.delta.get(key)
        if key not in self.base:
            return d
        b = self.base.get(key)
        if d.shape == b.shape:
            return (d.float() + b.float()).to(d.dtype)
        grows_rows = d.dim() == b.dim() and d.shape[0] > b.shape[0] and d.shape[1:] == b.shape[1:]
        if not grows_rows:
            raise ValueError(f"{key}: delta shape {tuple(d.shape)} vs base {tuple(b.shape)}")
        out = d.to(torch.float32, copy=True)  # never write into the source's tensor
        out[: b.shape[0]] += b.float()
        return out.to(d.dtype)


def convert_shikra(
    delta: str | os.PathLike,
    *,
    base: str | os.PathLike,
    vision_tower: str | os.PathLike,
    out: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    dtype: str | None = None,
    max_shard_bytes: int = 5 * 2**30,
) -> dict:
    """Apply the delta in ``delta`` to the Llama/Vicuna ``base`` and convert the result."""
    orig = read_original_config(delta)
    tensors = DeltaSource(TensorSource(delta), TensorSource(base))
    return convert_to_project(
        kind="shikra",
        keys=tensors.keys(),
        get=tensors.get,
        shape=tensors.shape,
        orig_config=orig,
        projector_type="linear",
        tower_dir=vision_tower,
        tokenizer_dir=tokenizer or delta,
        out=out,
        dtype=dtype,
        max_shard_bytes=max_shard_bytes,
        provenance={"delta": str(delta), "base": str(base)},
    )
