"""The shared core of the LLaVA and Shikra converters: original release layout -> project.

Both releases are a ``LlamaForCausalLM`` state dict plus ``model.mm_projector.*``, a config
with ``mm_*`` keys, a tokenizer, and a CLIP tower named by ``mm_vision_tower`` (a separate
transformers CLIP folder; Shikra may also carry the tower inside its weights). The project's
format is a :class:`genixer.models.llava.model.GenixerVLM` folder: ``config.json`` (model_type
``genixer_vlm``), safetensors shards with the names of :mod:`genixer.models.keymaps`, and a
tokenizer holding the chat's ``<image>`` and ``<pad>`` tokens.

Original LLaVA puts ONE placeholder id (-200) in the prompt and splices the projected patch
features in its place; Shikra writes ``<im_patch>`` once per patch between ``<im_start>`` and
``<im_end>``. The project (like llava-hf) writes ``<image>`` once per patch instead, so the
converter adds an ``<image>`` token; ``<im_start>``/``<im_end>`` stay ordinary tokens that the
processor writes around the patches (``image_start_token``/``image_end_token`` in the config).
New token rows of the embedding and of ``lm_head`` are the mean of the old rows.

Tensors are streamed (one at a time), so converting a 7B model needs about one shard of RAM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AddedToken, CLIPVisionConfig, LlamaConfig, PreTrainedTokenizerBase

from genixer.core.chat import BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN
from genixer.models.keymaps import (
    CLIP_TOWER_TO_PROJECT,
    ORIGINAL_TO_PROJECT,
    TOWER_PREFIX,
    VOCAB_KEYS,
    rename_all,
)
from genixer.models.tokenizer import load_checkpoint_tokenizer
from genixer.models.weights import ShardWriter, TensorSource, read_json, weight_files

IM_START, IM_END = "<im_start>", "<im_end>"
# Llama decoder settings copied from the original config when present.
TEXT_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "rms_norm_eps",
    "max_position_embeddings",
    "hidden_act",
    "rope_theta",
    "rope_scaling",
    "attention_bias",
    "head_dim",
)
SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ----------------------------------------------------------------------------- tokenizer
def add_project_tokens(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Add ``<image>`` and ``<pad>`` if missing (in that order); returns what was added."""
    vocab = tokenizer.get_vocab()
    for token in (BOS_TOKEN, EOS_TOKEN):
        if token not in vocab:
            raise ValueError(f"the tokenizer has no {token!r}: not a Llama/Vicuna tokenizer")
    added = []
    if IMAGE_TOKEN not in vocab:
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)])
        added.append(IMAGE_TOKEN)
    if PAD_TOKEN not in vocab:
        tokenizer.add_tokens([AddedToken(PAD_TOKEN, special=True, normalized=False)])
        added.append(PAD_TOKEN)
    tokenizer.pad_token = PAD_TOKEN
    return added


# ----------------------------------------------------------------------------- config
def vision_config(tower_dir: str | os.PathLike) -> CLIPVisionConfig:
    """The CLIP vision config of a transformers CLIP(Vision)Model folder."""
    if not (Path(tower_dir) / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in the vision tower folder {tower_dir}")
    return CLIPVisionConfig.from_pretrained(str(tower_dir), local_files_only=True)


def project_config(
    orig: dict,
    vision: CLIPVisionConfig,
    tokenizer: PreTrainedTokenizerBase,
    vocab_size: int,
    projector_type: str,
):
    """A ``GenixerVLMConfig`` equivalent to an original LLaVA / Shikra config."""
    from genixer.models.llava.model import GenixerVLMConfig, num_image_tokens

    text_kw = {k: orig[k] for k in TEXT_KEYS if orig.get(k) is not None}
    if "max_position_embeddings" not in text_kw and orig.get("max_sequence_length"):
        text_kw["max_position_embeddings"] = orig["max_sequence_length"]
    ids = {
        "pad_token_id": tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        "bos_token_id": tokenizer.convert_tokens_to_ids(BOS_TOKEN),
        "eos_token_id": tokenizer.convert_tokens_to_ids(EOS_TOKEN),
    }
    text = LlamaConfig(vocab_size=vocab_size, tie_word_embeddings=False, **text_kw, **ids)
    mm_hidden = orig.get("mm_hidden_size", vision.hidden_size)
    if mm_hidden != vision.hidden_size:
        raise ValueError(
            f"mm_hidden_size={mm_hidden} but the vision tower's hidden_size={vision.hidden_size}"
        )
    feature = orig.get("mm_vision_select_feature", "patch")
    if feature not in SELECT_FEATURE:
        raise ValueError(
            f"mm_vision_select_feature {feature!r} is not one of {list(SELECT_FEATURE)}"
        )
    start_end = bool(orig.get("mm_use_im_start_end", False))
    config = GenixerVLMConfig(
        vision_config=vision,
        text_config=text,
        projector_type=projector_type,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=int(orig.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy=SELECT_FEATURE[feature],
        image_start_token=IM_START if start_end else None,
        image_end_token=IM_END if start_end else None,
        **ids,
    )
    config.image_seq_length = num_image_tokens(config)
    if start_end:
        vocab = tokenizer.get_vocab()
        missing = [t for t in (IM_START, IM_END) if t not in vocab]
        if missing:
            raise ValueError(f"mm_use_im_start_end is set but the tokenizer lacks {missing}")
    return config


# ----------------------------------------------------------------------------- weights
Getter = Callable[[str], torch.Tensor]


def _grow_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Append rows equal to the mean of the existing ones (new tokens)."""
    extra = rows - tensor.shape[0]
    if extra <= 0:
        return tensor
    mean = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)
    return torch.cat([tensor, mean.expand(extra, -1)], dim=0)


def convert_to_project(
    *,
    kind: str,
    keys: list[str],
    get: Getter,
    shape: Callable[[str], tuple[int, ...]],
    orig_config: dict,
    projector_type: str,
    tower_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    out: str | os.PathLike,
    dtype: str | None = None,
    max_shard_bytes: int = 5 * 2**30,
    provenance: dict | None = None,
) -> dict:
    """Write the project-format folder ``out`` from original-layout tensors.

    ``keys``/``get``/``shape`` are the checkpoint's tensors (for Shikra: with the delta applied). The
    tower's weights come from ``keys`` when the checkpoint holds them, else from
    ``tower_dir``. Returns the conversion report (also written as ``conversion.json``).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, not {dtype!r}")
    names = rename_all(keys, ORIGINAL_TO_PROJECT)
    _check_projector(names.values(), projector_type)
    sources, tower_in_checkpoint = _weight_sources(names, get, tower_dir)

    tokenizer = load_checkpoint_tokenizer(tokenizer_dir)
    embed_key = next(k for k, v in names.items() if v == VOCAB_KEYS[0])
    old_rows = int(shape(embed_key)[0])
    added = add_project_tokens(tokenizer)
    vocab_size = max(old_rows, len(tokenizer))
    config = project_config(
        orig_config, vision_config(tower_dir), tokenizer, vocab_size, projector_type
    )

    files = _write_weights(out, sources, vocab_size, dtype, max_shard_bytes)
    config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    report = {
        "kind": kind,
        "tensors": len(sources),
        "weight_files": [f.name for f in files],
        "vision_tower": "checkpoint" if tower_in_checkpoint else str(tower_dir),
        "added_tokens": added,
        "vocab_size": {"before": old_rows, "after": vocab_size},
        "projector_type": projector_type,
        "image_start_end": config.image_start_token is not None,
        **(provenance or {}),
    }
    (out / "conversion.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


def _weight_sources(
    names: dict[str, str], get: Getter, tower_dir: str | os.PathLike
) -> tuple[list[tuple[str, str, Getter]], bool]:
    """Every tensor to write as ``(source key, project key, getter)``, and whether the
    checkpoint holds the vision tower itself.

    A release saved with its tower needs nothing else; otherwise the tower's weights are
    read from ``tower_dir`` (a transformers CLIP folder) and renamed into the project's keys.
    """
    sources: list[tuple[str, str, Getter]] = [(k, v, get) for k, v in names.items()]
    tower_in_checkpoint = any(v.startswith(TOWER_PREFIX) for v in names.values())
    if not tower_in_checkpoint:
        tower = TensorSource(tower_dir)
        tower_names = rename_all(tower.keys(), CLIP_TOWER_TO_PROJECT)
        sources += [(k, v, tower.get) for k, v in tower_names.items()]
    return sources, tower_in_checkpoint


def _write_weights(
    out: Path,
    sources: list[tuple[str, str, Getter]],
    vocab_size: int,
    dtype: str | None,
    max_shard_bytes: int,
) -> list[Path]:
    """Stream the tensors into safetensors shards (at most one shard is held in memory);
    the vocabulary matrices grow to ``vocab_size`` rows for the added tokens."""
    writer = ShardWriter(out, max_shard_bytes)
    for src_key, dst_key, getter in sources:
        tensor = getter(src_key)
        if dst_key in VOCAB_KEYS:
            tensor = _grow_rows(tensor, vocab_size)
        if dtype is not None:
            tensor = tensor.to(DTYPES[dtype])
        writer.add(dst_key, tensor)
    return writer.close()


def _check_projector(names, projector_type: str) -> None:
    found = {n.split(".")[2] for n in names if n.startswith("model.multi_modal_projector.")}
    want = {"mlp2x_gelu": {"linear_1", "linear_2"}, "linear": {"linear"}}[projector_type]
    if found != want:
        raise ValueError(
            f"projector weights {sorted(found)} do not fit projector_type {projector_type!r}"
        )


def read_original_config(directory: str | os.PathLike) -> dict:
    """``config.json`` of an original release; refuses folders that are not one."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in {directory}")
    orig = read_json(path)
    if not any(k.startswith("mm_") for k in orig):
        raise ValueError(
            f"{path} has no mm_* keys: not an original LLaVA/Shikra release (a llava-hf "
            "folder needs no conversion: load it with genixer.models.llava.model.load_vlm)"
        )
    weight_files(directory)  # refuses pickle-only folders early, with the how-to
    return orig
