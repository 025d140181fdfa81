"""transformers' CLIPModel folder (``openai/clip-vit-large-patch14``) -> an open_clip CLIP.

LLaVA's and Shikra's vision towers are such folders, so the CLIP filter can use the very
folder the Shikra tower comes from. The model is built from the folder's own config (widths,
depths, heads, patch and image size, QuickGELU for OpenAI's weights) with open_clip's
classes, and its weights renamed by :data:`genixer.models.keymaps.HF_CLIP_TO_OPEN_CLIP`.
"""

from __future__ import annotations

import os
import re

import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from transformers import CLIPConfig

from genixer.models.keymaps import (
    HF_CLIP_LAYER_TO_OPEN_CLIP,
    HF_CLIP_TO_OPEN_CLIP,
    QKV,
    TRANSPOSED_OPEN_CLIP,
    rename,
)
from genixer.models.weights import TensorSource


def open_clip_from_config(config: CLIPConfig) -> CLIP:
    """An open_clip CLIP with the geometry of a transformers ``CLIPConfig``."""
    v, t = config.vision_config, config.text_config
    acts = {v.hidden_act, t.hidden_act}
    if not acts <= {"quick_gelu", "gelu"} or len(acts) != 1:
        raise ValueError(f"unsupported CLIP activations {sorted(acts)}")
    vision = CLIPVisionCfg(
        layers=v.num_hidden_layers,
        width=v.hidden_size,
        head_width=v.hidden_size // v.num_attention_heads,
        mlp_ratio=v.intermediate_size / v.hidden_size,
        patch_size=v.patch_size,
        image_size=v.image_size,
    )
    text = CLIPTextCfg(
        context_length=t.max_position_embeddings,
        vocab_size=t.vocab_size,
        width=t.hidden_size,
        heads=t.num_attention_heads,
        layers=t.num_hidden_layers,
        mlp_ratio=t.intermediate_size / t.hidden_size,
    )
    return CLIP(config.projection_dim, vision, text, quick_gelu=acts == {"quick_gelu"})


def open_clip_state_dict(source: TensorSource) -> dict[str, torch.Tensor]:
    """The folder's weights under open_clip's names (q/k/v joined, projections transposed)."""
    out: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key in source:
        new = rename(key, HF_CLIP_TO_OPEN_CLIP)
        if new is None:
            continue
        if QKV in new:
            prefix, _, _ = new.partition(QKV)
            rest = key.split(".", 4)[4]  # after "<tower>.encoder.layers.<n>."
            new = prefix + rename(rest, HF_CLIP_LAYER_TO_OPEN_CLIP)
            joined = re.fullmatch(r"(.+\.in_proj_(?:weight|bias))\.([qkv])", new)
            if joined:
                parts.setdefault(joined.group(1), {})[joined.group(2)] = source.get(key)
                continue
        tensor = source.get(key)
        out[new] = tensor.t().contiguous() if new in TRANSPOSED_OPEN_CLIP else tensor
    for name, qkv in parts.items():
        if set(qkv) != {"q", "k", "v"}:
            raise ValueError(f"{name}: q/k/v projections incomplete ({sorted(qkv)})")
        out[name] = torch.cat([qkv["q"], qkv["k"], qkv["v"]], dim=0)
    return out


def load_hf_clip_as_open_clip(directory: str | os.PathLike) -> CLIP:
    """open_clip CLIP (eval, float32) from a transformers CLIPModel folder (safetensors)."""
    config = CLIPConfig.from_pretrained(str(directory), local_files_only=True)
    model = open_clip_from_config(config)
    state = {k: v.float() for k, v in open_clip_state_dict(TensorSource(directory)).items()}
    model.load_state_dict(state, strict=True)
    return model.eval()
