"""Every weight-name map between checkpoint layouts, in one place.

A map is an ordered list of ``(regex, replacement)``: the FIRST pattern that matches a key
rewrites it (``re.sub`` with the replacement), ``None`` as the replacement drops the key on
purpose. A key that no pattern matches is an error: nothing is silently left behind.

Target names are the project's (transformers 5 ``LlavaForConditionalGeneration`` with
:class:`genixer.models.llava.model.GenixerVLM`'s projector names)::

    model.language_model.{embed_tokens,layers.N...,norm}   the Llama decoder
    lm_head.weight
    model.vision_tower.{embeddings,pre_layrnorm,encoder,post_layernorm}...
                                                           transformers 5's CLIPVisionModel
                                                           (no ``vision_model.`` level)
    model.multi_modal_projector.linear_1/linear_2          mlp2x_gelu (LLaVA-1.5)
    model.multi_modal_projector.linear                     linear (Shikra, LLaVA v1)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

KeyMap = list[tuple[str, str | None]]

# The llava-hf hub layout (what transformers < 4.52 wrote, and what transformers 5 still
# writes for a native LlavaForConditionalGeneration) -> the project's names. Given to
# ``from_pretrained(key_mapping=...)``, which applies every pattern in turn, so each pattern
# must be anchored and never match the output of another.
LLAVA_HF_TO_PROJECT: dict[str, str] = {
    r"^language_model\.lm_head\.": "lm_head.",
    r"^language_model\.model\.": "model.language_model.",
    r"^vision_tower\.": "model.vision_tower.",
    r"^multi_modal_projector\.": "model.multi_modal_projector.",
}

# Original LLaVA (liuhaotian/llava-v1.5-*) and Shikra (shikras/shikra-7b) release weights:
# a LlamaForCausalLM state dict plus ``model.mm_projector.*`` (and, when the tower was
# trained or saved with the model, the CLIP tower under ``model.vision_tower...``).
ORIGINAL_TO_PROJECT: KeyMap = [
    (r"\.rotary_emb\.inv_freq$", None),  # a buffer old transformers versions saved
    (r"position_ids$", None),  # likewise, in CLIP embeddings
    (r"^model\.mm_projector\.0\.(weight|bias)$", r"model.multi_modal_projector.linear_1.\1"),
    (r"^model\.mm_projector\.2\.(weight|bias)$", r"model.multi_modal_projector.linear_2.\1"),
    (r"^model\.mm_projector\.(weight|bias)$", r"model.multi_modal_projector.linear.\1"),
    # LLaVA-1.5 wraps CLIPVisionModel in CLIPVisionTower (.vision_tower); Shikra does not.
    (r"^model\.vision_tower\.vision_tower\.vision_model\.", "model.vision_tower."),
    (r"^model\.vision_tower\.vision_model\.", "model.vision_tower."),
    (r"^model\.(embed_tokens|layers|norm)\.", r"model.language_model.\1."),
    (r"^lm_head\.weight$", "lm_head.weight"),
]

# A separate CLIP folder (openai/clip-vit-large-patch14-336 and the like), in transformers'
# CLIPModel or CLIPVisionModel layout: only the vision encoder is kept.
CLIP_TOWER_TO_PROJECT: KeyMap = [
    (r"position_ids$", None),
    (r"^vision_model\.", "model.vision_tower."),
    (r"^(text_model\.|text_projection\.|visual_projection\.|logit_scale$)", None),
]

# Keys whose rows are token ids (they grow when tokens are added).
VOCAB_KEYS = ("model.language_model.embed_tokens.weight", "lm_head.weight")
TOWER_PREFIX = "model.vision_tower."


class UnmappedKeyError(KeyError):
    """A checkpoint key that no pattern of the map knows."""


def rename(key: str, keymap: KeyMap) -> str | None:
    """The project name of ``key`` (None: dropped on purpose); raises on an unknown key."""
    for pattern, replacement in keymap:
        if re.search(pattern, key):
            return None if replacement is None else re.sub(pattern, replacement, key)
    raise UnmappedKeyError(f"no rule for checkpoint key {key!r}")


def rename_all(keys: Iterable[str], keymap: KeyMap) -> dict[str, str]:
    """``{source key: project key}`` for every kept key; raises listing ALL unknown keys."""
    out: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        try:
            new = rename(key, keymap)
        except UnmappedKeyError:
            unknown.append(key)
            continue
        if new is not None:
            out[key] = new
    if unknown:
        shown = ", ".join(sorted(unknown)[:8])
        raise UnmappedKeyError(f"{len(unknown)} checkpoint keys match no rule: {shown}")
    return out


# transformers' CLIPModel (openai/clip-vit-large-patch14 as the HF hub holds it) -> open_clip's
# CLIP (OpenAI's own names). q/k/v projections are joined into ``attn.in_proj_*`` and the two
# projection matrices are transposed by :mod:`genixer.models.clip.convert_hf`; ``QKV`` marks them.
QKV = "{qkv}"
HF_CLIP_TO_OPEN_CLIP: KeyMap = [
    (r"position_ids$", None),
    (r"^vision_model\.embeddings\.class_embedding$", "visual.class_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.weight$", "visual.conv1.weight"),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.positional_embedding"),
    (r"^vision_model\.pre_layrnorm\.", "visual.ln_pre."),
    (r"^vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.", r"visual.transformer.resblocks.\1." + QKV),
    (r"^visual_projection\.weight$", "visual.proj"),
    (r"^text_model\.embeddings\.token_embedding\.", "token_embedding."),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^text_model\.encoder\.layers\.(\d+)\.", r"transformer.resblocks.\1." + QKV),
    (r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^text_projection\.weight$", "text_projection"),
    (r"^logit_scale$", "logit_scale"),
]
# Inside one encoder layer (the rest of the key after ``QKV``).
HF_CLIP_LAYER_TO_OPEN_CLIP: KeyMap = [
    (r"^self_attn\.(q|k|v)_proj\.(weight|bias)$", r"attn.in_proj_\2.\1"),  # joined later
    (r"^self_attn\.out_proj\.", "attn.out_proj."),
    (r"^layer_norm1\.", "ln_1."),
    (r"^layer_norm2\.", "ln_2."),
    (r"^mlp\.fc1\.", "mlp.c_fc."),
    (r"^mlp\.fc2\.", "mlp.c_proj."),
]
TRANSPOSED_OPEN_CLIP = ("visual.proj", "text_projection")  # nn.Linear weight -> x @ W
