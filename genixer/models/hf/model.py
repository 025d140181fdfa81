"""Any Hugging Face vision-language chat model as the project's generator, judge or
downstream model: a local folder that ``AutoModelForImageTextToText`` and ``AutoProcessor``
load, safetensors only, never remote code.

What a folder must offer, checked by :func:`check_folder` before any stage runs: a
``config.json`` whose ``model_type`` transformers maps to an image-text-to-text class (not
a text-only model, no ``auto_map`` to remote code), safetensors weights (pickles refused
with their conversion), and a processor with a chat template.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)

from genixer.models.hf.processor import HfChatProcessor
from genixer.models.weights import (
    PICKLE_SUFFIXES,
    PickleOnlyError,
    require_every_weight,
    weight_files,
)

# Files a processor may keep its chat template in (transformers writes the first).
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
TEMPLATE_CONFIGS = ("processor_config.json", "tokenizer_config.json")


class UnsupportedCheckpointError(ValueError):
    """A folder the hf family cannot use, with the reason and what to do."""


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise UnsupportedCheckpointError(
            f"{folder} has no config.json: give the folder that save_pretrained wrote"
        )
    return json.loads(path.read_text())


def _check_class(folder: Path, config: dict) -> None:
    model_type = config.get("model_type")
    if config.get("auto_map"):
        raise UnsupportedCheckpointError(
            f"{folder} needs remote code (config.json has auto_map), which is never run "
            "here; use a release whose architecture transformers ships (e.g. the '-hf' "
            "conversion of the model)"
        )
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UnsupportedCheckpointError(
            f"{folder} is a text-only model ({model_type!r}): a generator, judge or "
            "downstream model must read images; give an image-text-to-text checkpoint"
        )
    raise UnsupportedCheckpointError(
        f"{folder}: model_type {model_type!r} is not an image-text-to-text model this "
        "transformers version knows (AutoModelForImageTextToText); upgrade transformers or "
        "convert the checkpoint"
    )


def _has_chat_template(folder: Path) -> bool:
    if any((folder / name).is_file() for name in TEMPLATE_FILES):
        return True
    for name in TEMPLATE_CONFIGS:
        path = folder / name
        if path.is_file() and json.loads(path.read_text()).get("chat_template"):
            return True
    return False


def check_folder(folder: str | os.PathLike) -> None:
    """Refuse, with the reason and the remedy, a folder the hf family cannot load."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UnsupportedCheckpointError(f"no checkpoint folder at {folder}")
    _check_class(folder, _config(folder))
    try:
        weight_files(folder)
    except PickleOnlyError as err:  # its message says how to convert
        raise UnsupportedCheckpointError(str(err)) from err
    except FileNotFoundError as err:
        raise UnsupportedCheckpointError(f"{folder}: {err} (safetensors are needed)") from err
    if not _has_chat_template(folder):
        raise UnsupportedCheckpointError(
            f"{folder} has no chat template (chat_template.jinja, or chat_template in "
            "processor_config.json / tokenizer_config.json): the conversations are rendered "
            "through it; add the model family's template to the folder"
        )


def load_model(folder: str | os.PathLike, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """The checked folder's model, every weight from the folder (a mismatch raises)."""
    check_folder(folder)
    model, info = AutoModelForImageTextToText.from_pretrained(
        str(folder),
        dtype=dtype,
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
        output_loading_info=True,
    )
    require_every_weight(folder, info)
    return model


def load_processor(folder: str | os.PathLike, **kw: Any) -> HfChatProcessor:
    """The folder's own processor behind the project's processor interface."""
    check_folder(folder)
    processor = AutoProcessor.from_pretrained(
        str(folder), local_files_only=True, trust_remote_code=False
    )
    return HfChatProcessor(processor, **kw)


def save(model: PreTrainedModel, processor: HfChatProcessor, folder: str | os.PathLike) -> None:
    """Model (safetensors) and processor, so the folder loads like the one it came from."""
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    processor.processor.save_pretrained(str(folder))


def copy_folder(source: str | os.PathLike, folder: str | os.PathLike) -> dict:
    """A checked checkpoint taken as it is (its files copied, nothing re-serialized)."""
    check_folder(source)
    skip = shutil.ignore_patterns(*(f"*{suffix}" for suffix in PICKLE_SUFFIXES), ".git*")
    shutil.copytree(source, folder, dirs_exist_ok=True, ignore=skip)
    return {"from_checkpoint": str(source)}
