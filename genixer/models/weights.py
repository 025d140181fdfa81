"""Reading and writing checkpoint folders tensor by tensor (safetensors only).

A 7B checkpoint does not have to fit in memory twice: :class:`TensorSource` opens the
shards lazily and hands out one tensor at a time, :class:`ShardWriter` writes shards of a
bounded size plus transformers' ``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class PickleOnlyError(ValueError):
    """A folder whose weights exist only as pickles (refused: unpickling runs code)."""


def pickle_refusal(directory: str | os.PathLike, pickles: list[str]) -> PickleOnlyError:
    """The error for a pickle-only folder, with the one-off conversion to run elsewhere."""
    shown = ", ".join(pickles[:4]) + (" ..." if len(pickles) > 4 else "")
    return PickleOnlyError(
        f"{directory} holds only pickled weights ({shown}); they are never read here "
        "(unpickling can run arbitrary code). Convert them once, in a trusted environment: "
        'for each FILE.bin run  python -c "import sys, torch, safetensors.torch as st; '
        "st.save_file(torch.load(sys.argv[1], map_location='cpu', weights_only=True), "
        "sys.argv[2], metadata={'format': 'pt'})\" FILE.bin FILE.safetensors  and, for a "
        "sharded checkpoint, write model.safetensors.index.json from pytorch_model.bin."
        "index.json with each '.bin' file name replaced by its '.safetensors' name."
    )


def require_every_weight(directory: str | os.PathLike, info: dict) -> None:
    """Raise when ``from_pretrained``'s loading info shows a missing, unexpected or
    mismatched weight: a model must never run with randomly initialised layers."""
    bad = {k: sorted(v)[:6] for k, v in info.items() if k != "error_msgs" and v}
    if bad or info.get("error_msgs"):
        raise ValueError(
            f"{directory}: weights do not match the model: {bad or info['error_msgs']}"
        )


def weight_files(directory: str | os.PathLike) -> list[Path]:
    """The safetensors files of a checkpoint folder (the index's shards, in index order).

    Raises :class:`PickleOnlyError` for a folder with pickles only, ``FileNotFoundError``
    for a folder with no weights at all.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {directory}")
    index = directory / INDEX_NAME
    if index.is_file():
        shards = dict.fromkeys(json.loads(index.read_text())["weight_map"].values())
        files = [directory / name for name in shards]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{index} names missing shards: {missing}")
        return files
    files = sorted(directory.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in directory.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise pickle_refusal(directory, pickles)
    raise FileNotFoundError(f"no .safetensors weights in {directory}")


def read_json(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


class TensorSource:
    """Lazy ``{key: tensor}`` over the safetensors files of a folder."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.files = weight_files(directory)
        self._where: dict[str, Path] = {}
        for file in self.files:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    if key in self._where:
                        raise ValueError(f"{key} is in both {self._where[key]} and {file}")
                    self._where[key] = file
        self._open: dict[Path, object] = {}

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def _handle(self, key: str):
        file = self._where[key]
        if file not in self._open:
            self._open[file] = safe_open(str(file), framework="pt")
        return self._open[file]

    def get(self, key: str) -> torch.Tensor:
        return self._handle(key).get_tensor(key)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handle(key).get_slice(key).get_shape())


class ShardWriter:
    """Write tensors into ``model-XXXXX-of-YYYYY.safetensors`` shards of at most
    ``max_shard_bytes`` (one shard: ``model.safetensors``) plus the index transformers reads."""

    def __init__(self, directory: str | os.PathLike, max_shard_bytes: int = 5 * 2**30) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_shard_bytes = int(max_shard_bytes)
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_bytes = 0
        self._written: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, key: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self._pending[key] = tensor.contiguous()
        self._pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        tmp = self.directory / f".shard-{len(self._written):05d}.safetensors.tmp"
        save_file(self._pending, str(tmp), metadata={"format": "pt"})
        self._written.append((tmp, list(self._pending)))
        self._pending, self._pending_bytes = {}, 0

    def close(self) -> list[Path]:
        """Write what is pending, name the shards, write the index; returns the files."""
        if self._pending or not self._written:
            self._flush()
        n = len(self._written)
        names = (
            [SINGLE_NAME]
            if n == 1
            else [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
        )
        weight_map: dict[str, str] = {}
        for (tmp, keys), name in zip(self._written, names, strict=True):
            os.replace(tmp, self.directory / name)
            weight_map.update(dict.fromkeys(keys, name))
        if n > 1:
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
            (self.directory / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True))
        return [self.directory / name for name in names]


def copy_checkpoint(load, save, checkpoint: str | os.PathLike, folder: Path) -> dict:
    """A real checkpoint taken as it is: its weights (``load`` / ``save``, the model family's
    own) and its own tokenizer, saved into ``folder/model`` so that later stages read every
    model the same way."""
    from genixer.models.tokenizer import load_checkpoint_tokenizer, save_tokenizer

    save(load(checkpoint), folder / "model")
    save_tokenizer(load_checkpoint_tokenizer(checkpoint), folder / "model")
    return {"from_checkpoint": str(checkpoint)}
