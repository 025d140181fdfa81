"""The generator architectures (Genixer_L = LLaVA-1.5, Genixer_S = Shikra) on one code path.

Both are "CLIP vision tower -> projector -> Llama" models, i.e. transformers'
``LlavaForConditionalGeneration``; they differ in the projector:

- ``mlp2x_gelu`` (LLaVA-1.5): linear-GELU-linear, transformers' own ``LlavaMultiModalProjector``
  (parameters ``model.multi_modal_projector.linear_1/linear_2``).
- ``linear`` (Shikra): one ``nn.Linear`` (parameters ``model.multi_modal_projector.linear``;
  a different name on purpose, so an MLP checkpoint never half-loads into a linear model).

Models are either tiny ones built from a spec dict (:func:`build_vlm`) or folders written by
``save_pretrained`` in safetensors (:func:`load_vlm`); pickled weights are refused.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaModel,
    LlavaPreTrainedModel,
    PreTrainedTokenizerBase,
)

from genixer.core.chat import IMAGE_TOKEN
from genixer.models.keymaps import LLAVA_HF_TO_PROJECT
from genixer.models.processor import ChatProcessor
from genixer.models.weights import require_every_weight, weight_files

PROJECTOR_TYPES = ("mlp2x_gelu", "linear")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@strict
class GenixerVLMConfig(LlavaConfig):
    """``LlavaConfig`` plus the projector type (``"mlp2x_gelu"`` or ``"linear"``) and the
    optional tokens written around an image's patch tokens (Shikra's ``<im_start>`` /
    ``<im_end>``; None for LLaVA-1.5 and the tiny models)."""

    model_type = "genixer_vlm"

    projector_type: str = "mlp2x_gelu"
    image_start_token: str | None = None
    image_end_token: str | None = None
    # Token sequences after which position ids restart (genixer.models.llava.positions); None: off.
    position_restart_markers: list[list[int]] | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.projector_type not in PROJECTOR_TYPES:
            raise ValueError(
                f"projector_type must be one of {PROJECTOR_TYPES}, not {self.projector_type!r}"
            )


class LinearProjector(nn.Module):
    """Shikra's projector: one linear map from vision features to text embeddings."""

    def __init__(self, config: GenixerVLMConfig) -> None:
        super().__init__()
        layers = config.vision_feature_layer
        n_layers = 1 if isinstance(layers, int) else len(layers)
        self.linear = nn.Linear(
            config.vision_config.hidden_size * n_layers,
            config.text_config.hidden_size,
            bias=config.multimodal_projector_bias,
        )

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.linear(image_features)


class GenixerVLMModel(LlavaModel):
    """``LlavaModel`` whose projector follows ``config.projector_type``."""

    config_class = GenixerVLMConfig

    def __init__(self, config: GenixerVLMConfig) -> None:
        super().__init__(config)
        if config.projector_type == "linear":
            self.multi_modal_projector = LinearProjector(config)
            # post_init only initializes modules not yet initialized: here the new projector.
            self.post_init()


class GenixerVLM(LlavaForConditionalGeneration):
    """LLaVA-1.5 / Shikra generator: ``LlavaForConditionalGeneration`` with a chosen projector."""

    config_class = GenixerVLMConfig

    def __init__(self, config: GenixerVLMConfig) -> None:
        # The parent's __init__ minus its LlavaModel (building that just to replace it would
        # cost a second language model's worth of allocation and init).
        LlavaPreTrainedModel.__init__(self, config)
        self.model = GenixerVLMModel(config)
        self.lm_head = nn.Linear(
            config.text_config.hidden_size, config.text_config.vocab_size, bias=False
        )
        self.post_init()
        freeze_unused_vision_parameters(self)

    def freeze_unused_parameters(self) -> list[str]:
        """Freeze what can never get a gradient (see :func:`freeze_unused_vision_parameters`)."""
        return freeze_unused_vision_parameters(self)


AutoConfig.register(GenixerVLMConfig.model_type, GenixerVLMConfig, exist_ok=True)


def _used_vision_layers(config: LlavaConfig) -> int:
    """How many CLIP encoder layers the selected feature layer(s) depend on."""
    n_layers = config.vision_config.num_hidden_layers
    layers = config.vision_feature_layer
    layers = [layers] if isinstance(layers, int) else list(layers)
    # hidden_states has n_layers + 1 entries: entry k is the output of the first k layers.
    return max(layer % (n_layers + 1) for layer in layers)


def freeze_unused_vision_parameters(model: LlavaForConditionalGeneration) -> list[str]:
    """Set ``requires_grad=False`` on vision-tower parameters that can never get a gradient.

    LLaVA reads hidden states of a middle layer (``vision_feature_layer=-2``): the CLIP
    encoder layers after it and CLIP's ``post_layernorm`` (it only feeds the pooled CLS
    output, which LLaVA never uses) take no part in the loss. Plain DDP fails on parameters
    that get no gradient ("Expected to have finished reduction..."), and optimizers would
    carry them for nothing; freezing them keeps DDP fast (no ``find_unused_parameters``).
    Returns the frozen parameter names. Call again after any blanket ``requires_grad_(True)``.
    """
    tower = model.model.vision_tower
    used = _used_vision_layers(model.config)
    frozen: list[str] = []
    for name, param in tower.named_parameters():
        unused = name.startswith("post_layernorm.")
        if name.startswith("encoder.layers."):
            unused = int(name.split(".")[2]) >= used
        if unused:
            param.requires_grad_(False)
            frozen.append(f"model.vision_tower.{name}")
    return frozen


def num_image_tokens(model_or_config: nn.Module | LlavaConfig) -> int:
    """Visual tokens per image: one per patch, plus CLIP's class token for ``"full"``."""
    config = getattr(model_or_config, "config", model_or_config)
    vision = config.vision_config
    n = (vision.image_size // vision.patch_size) ** 2
    return n + 1 if config.vision_feature_select_strategy == "full" else n


def build_vlm(spec: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> GenixerVLM:
    """Build a randomly initialized generator from a small spec (see module docs of keys).

    Required keys: image_size, patch_size, vision_hidden, vision_layers, vision_heads,
    vision_intermediate, text_hidden, text_layers, text_heads, text_intermediate,
    projector_type, max_position_embeddings. Optional: vision_feature_layer (-2),
    vision_feature_select_strategy ("default": drop CLS), vision_pos_init_std (re-initialise
    CLIP's position embeddings with this std; it helped position questions on tiny models),
    attn_implementation ("sdpa"), position_restart (false; see genixer.models.llava.positions).
    Vocabulary and special ids come from the tokenizer. Uses the global torch RNG: seed it
    first for a reproducible model.
    """
    vision = CLIPVisionConfig(
        image_size=spec["image_size"],
        patch_size=spec["patch_size"],
        hidden_size=spec["vision_hidden"],
        num_hidden_layers=spec["vision_layers"],
        num_attention_heads=spec["vision_heads"],
        intermediate_size=spec["vision_intermediate"],
        num_channels=3,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec["text_hidden"],
        num_hidden_layers=spec["text_layers"],
        num_attention_heads=spec["text_heads"],
        num_key_value_heads=spec["text_heads"],
        intermediate_size=spec["text_intermediate"],
        max_position_embeddings=spec["max_position_embeddings"],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config = GenixerVLMConfig(
        vision_config=vision,
        text_config=text,
        projector_type=spec["projector_type"],
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=spec.get("vision_feature_layer", -2),
        vision_feature_select_strategy=spec.get("vision_feature_select_strategy", "default"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.image_seq_length = num_image_tokens(config)
    config._attn_implementation = spec.get("attn_implementation", "sdpa")
    model = GenixerVLM(config)
    std = spec.get("vision_pos_init_std")
    if std is not None:
        with torch.no_grad():
            model.model.vision_tower.embeddings.position_embedding.weight.normal_(0.0, float(std))
    return model


def save_vlm(model: GenixerVLM, directory: str | os.PathLike) -> None:
    """Write config + safetensors weights to ``directory``."""
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)


def load_vlm(directory: str | os.PathLike, **kwargs: Any) -> GenixerVLM:
    """Load a generator saved by :func:`save_vlm`, or a llava-hf LLaVA-1.5 folder.

    Local safetensors only, never ``trust_remote_code``. A folder with only pickled weights
    (``.bin``/``.pt``...) is refused with the command that converts them. llava-hf folders
    (``model_type: llava``, keys ``language_model.model.*``, ``vision_tower.*``,
    ``multi_modal_projector.*``; single file or sharded with an index) are renamed on load
    (:data:`genixer.models.keymaps.LLAVA_HF_TO_PROJECT`). Every weight of the model must
    come from the folder and every weight of the folder must be used: a mismatch raises
    instead of leaving randomly initialised layers. Extra ``kwargs`` go to
    ``from_pretrained`` (e.g. ``dtype``).
    """
    directory = str(directory)
    weight_files(directory)  # FileNotFoundError, or PickleOnlyError with the conversion to run
    with open(os.path.join(directory, "config.json")) as f:
        raw = json.load(f)
    if raw.get("model_type") not in (GenixerVLMConfig.model_type, "llava"):
        raise ValueError(f"{directory} is a {raw.get('model_type')!r} model, not a LLaVA-style one")
    raw.pop("model_type", None)
    raw.setdefault("projector_type", "mlp2x_gelu")  # a plain llava-hf folder is LLaVA-1.5
    config = GenixerVLMConfig.from_dict(raw)
    kwargs.setdefault("dtype", torch.float32)
    model, info = GenixerVLM.from_pretrained(
        directory,
        config=config,
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
        key_mapping=LLAVA_HF_TO_PROJECT,
        output_loading_info=True,
        **kwargs,
    )
    require_every_weight(directory, info)
    freeze_unused_vision_parameters(model)  # loading re-creates the parameters
    return model


def processor_for(
    model: GenixerVLM | LlavaConfig, tokenizer: PreTrainedTokenizerBase, **kw: Any
) -> ChatProcessor:
    """A :class:`ChatProcessor` matching the model (image size, image token count).

    ``kw`` may set image_mean / image_std (CLIP's by default), pad_to_square, max_length.
    """
    config = getattr(model, "config", model)
    kw.setdefault("image_mean", CLIP_MEAN)
    kw.setdefault("image_std", CLIP_STD)
    kw.setdefault("image_start", getattr(config, "image_start_token", None))
    kw.setdefault("image_end", getattr(config, "image_end_token", None))
    return ChatProcessor(
        tokenizer,
        image_size=config.vision_config.image_size,
        num_image_tokens=num_image_tokens(config),
        **kw,
    )
