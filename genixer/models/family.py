"""Model families: how the pipeline checks, copies, loads, saves and feeds a generator or a
downstream model, whatever its kind. Stages ask :func:`family` for the config's family and
never branch on it.

- ``genixer``: the project's LLaVA-1.5 / Shikra architecture (tiny from a spec, or a converted
  or llava-hf checkpoint), the project's chat format, the project tokenizer or the
  checkpoint's own.
- ``hf``: any transformers image-text-to-text chat model, with its own processor and chat
  template (:mod:`genixer.models.hf`).
"""

from __future__ import annotations

import os
from pathlib import Path

from genixer.models.hf import model as hf
from genixer.models.llava.model import load_vlm, processor_for, save_vlm
from genixer.models.tokenizer import load_checkpoint_tokenizer, save_tokenizer, tokenizer_at
from genixer.models.weights import copy_checkpoint, weight_files


class GenixerFamily:
    name = "genixer"

    def check(self, checkpoint: str | os.PathLike) -> None:
        weight_files(checkpoint)  # no folder, no weights, or pickles only: refused

    def copy(self, checkpoint: str | os.PathLike, folder: Path) -> dict:
        """A real checkpoint into ``folder/model`` (weights re-saved, its tokenizer beside)."""
        return copy_checkpoint(load_vlm, save_vlm, checkpoint, folder)

    def load(self, folder: str | os.PathLike):
        return load_vlm(folder)

    def processor(self, model, folder: str | os.PathLike, project_tokenizer):
        """The chat processor; the checkpoint's tokenizer if the folder has one, else the
        project tokenizer built from the collection."""
        return processor_for(model, tokenizer_at(folder, project_tokenizer))

    def checkpoint_processor(self, model, folder: str | os.PathLike):
        """A real checkpoint's processor: its own tokenizer (never the project's), prompts
        up to the model's whole context."""
        max_length = model.config.text_config.max_position_embeddings
        return processor_for(model, load_checkpoint_tokenizer(folder), max_length=max_length)

    def save(self, model, processor, folder: Path, project_tokenizer) -> None:
        save_vlm(model, folder)
        if processor.tokenizer is not project_tokenizer:
            save_tokenizer(processor.tokenizer, folder)


class HfFamily:
    name = "hf"

    def check(self, checkpoint: str | os.PathLike) -> None:
        hf.check_folder(checkpoint)

    def copy(self, checkpoint: str | os.PathLike, folder: Path) -> dict:
        return hf.copy_folder(checkpoint, folder / "model")

    def load(self, folder: str | os.PathLike):
        return hf.load_model(folder)

    def processor(self, model, folder: str | os.PathLike, project_tokenizer=None):
        return hf.load_processor(folder)

    def checkpoint_processor(self, model, folder: str | os.PathLike):
        return hf.load_processor(folder)

    def save(self, model, processor, folder: Path, project_tokenizer=None) -> None:
        hf.save(model, processor, folder)


FAMILIES = {"genixer": GenixerFamily(), "hf": HfFamily()}
DEFAULT_FAMILY = "genixer"


def family(model_cfg) -> GenixerFamily | HfFamily:
    """The family a generator or downstream config names (``family``; the project's own
    when left out)."""
    name = model_cfg.get("family") or DEFAULT_FAMILY
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; families: {sorted(FAMILIES)}")
    return FAMILIES[name]
