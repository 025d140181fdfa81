"""The Fuyu judge: the third-party MLLM of the paper's Fuyu-driven data filter.

The judge is transformers' ``FuyuForCausalLM`` (a Persimmon decoder that embeds raw image
patches with one linear layer), built tiny from a spec or loaded from a local folder. Its
inputs are made by :class:`genixer.models.fuyu.processor.JudgeProcessor` and its scores
read by :mod:`genixer.models.fuyu.scoring`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import FuyuConfig, FuyuForCausalLM, PreTrainedTokenizerBase

from genixer.core.chat import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN
from genixer.models.fuyu.processor import PATCH_TOKEN, JudgeProcessor, special_token_id

SPEC_KEYS = (
    "image_size",
    "patch_size",
    "hidden",
    "layers",
    "heads",
    "intermediate",
    "max_position_embeddings",
)


def special_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """The pad / bos / eos ids a judge config names, from the project tokenizer."""
    return {
        "pad_token_id": special_token_id(tokenizer, PAD_TOKEN),
        "bos_token_id": special_token_id(tokenizer, BOS_TOKEN),
        "eos_token_id": special_token_id(tokenizer, EOS_TOKEN),
    }


def build_judge(spec: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> FuyuForCausalLM:
    """A randomly initialised Fuyu judge from a small spec.

    ``spec`` keys: image_size, patch_size, hidden, layers, heads, intermediate,
    max_position_embeddings. Vocabulary size and special ids come from ``tokenizer``.
    Initialisation uses torch's global RNG: seed it before calling for a reproducible model.
    """
    missing = [k for k in SPEC_KEYS if k not in spec]
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if missing or unknown:
        raise ValueError(f"judge spec: missing keys {missing}, unknown keys {unknown}")
    if spec["image_size"] % spec["patch_size"]:
        raise ValueError("judge spec: image_size must be a multiple of patch_size")
    if spec["hidden"] % spec["heads"]:
        raise ValueError("judge spec: hidden must be a multiple of heads")
    ids = special_ids(tokenizer)
    text_config = {
        "model_type": "persimmon",
        "vocab_size": len(tokenizer),
        "hidden_size": spec["hidden"],
        "intermediate_size": spec["intermediate"],
        "num_hidden_layers": spec["layers"],
        "num_attention_heads": spec["heads"],
        "max_position_embeddings": spec["max_position_embeddings"],
        "hidden_act": "relu2",  # Persimmon/Fuyu's squared ReLU
        "qk_layernorm": True,
        **ids,
    }
    config = FuyuConfig(
        image_size=spec["image_size"],
        patch_size=spec["patch_size"],
        num_channels=3,
        image_token_id=special_token_id(tokenizer, PATCH_TOKEN),
        text_config=text_config,
        **ids,
    )
    return FuyuForCausalLM(config)


def save_judge(model: FuyuForCausalLM, directory: str | Path) -> Path:
    """Save the judge's config and weights (safetensors) into ``directory``."""
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def load_judge(directory: str | Path) -> FuyuForCausalLM:
    """Load a judge saved by :func:`save_judge`, or a local Fuyu-8B folder (``adept/fuyu-8b``
    layout: flat Fuyu config, sharded safetensors with ``language_model.*`` and
    ``vision_embed_tokens.*`` keys, which transformers renames on load).

    Pickle-only folders are refused with the conversion command. Every weight must load:
    a missing or unused weight raises instead of leaving random layers.
    """
    from genixer.models.weights import require_every_weight, weight_files

    directory = Path(directory)
    weight_files(directory)  # FileNotFoundError / PickleOnlyError (a ValueError) with how-to
    model, info = FuyuForCausalLM.from_pretrained(
        directory,
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
        output_loading_info=True,
    )
    require_every_weight(directory, info)
    return model


class JudgePatchFeatures(nn.Module):
    """The judge's own patch features: its linear patch embedding and first ``layer``
    decoder layers run over the image tokens alone, read at the patch positions.

    Fuyu has no vision encoder; pretraining these features to name what lies under each
    patch (:func:`genixer.models.vision_pretrain.pretrain_patches`) gives the judge eyes
    before it learns to judge from one yes/no bit per example.
    """

    def __init__(self, model: FuyuForCausalLM, processor: JudgeProcessor, layer: int = 1):
        super().__init__()
        self.model = model
        self.layer = layer
        ids = torch.tensor(processor.image_token_ids())
        self.register_buffer("input_ids", ids, persistent=False)
        self.register_buffer("is_patch", ids == processor.patch_id, persistent=False)
        self.hidden_size = model.config.text_config.hidden_size
        self.num_patches = int(self.is_patch.sum())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        ids = self.input_ids.expand(len(pixel_values), -1)
        out = self.model.model(input_ids=ids, pixel_values=pixel_values, output_hidden_states=True)
        return out.hidden_states[self.layer][:, self.is_patch]
