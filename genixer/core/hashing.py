"""Content keys: a resolved config (or any JSON-able value) hashed the same way everywhere."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from omegaconf import OmegaConf

# A builder (``_target_``) is hashed by the dotted path it had when cache keys were first made
# with it, so that moving code never invalidates finished stages. A new builder is hashed by
# its own path; a builder whose output changes gets a new stage version, not a new name here.
KEYED_AS = {
    "genixer.models.llava.model.build_vlm": "genixer.models.vlm.build_vlm",
    "genixer.models.fuyu.model.build_judge": "genixer.models.judge.build_judge",
    "genixer.models.clip.model.build_clip": "genixer.models.clip_filter.build_clip",
    "genixer.sources.shapes.ShapesWorld": "genixer.world.shapes.ShapesWorld",
    "genixer.sources.folder.FolderWorld": "genixer.world.folder.FolderWorld",
    "genixer.sources.collection.CollectionWorld": "genixer.world.collection.CollectionWorld",
}


def plain(obj: object) -> object:
    """A plain, resolved copy: config nodes anywhere inside dicts and lists become their
    resolved values, so an interpolation is hashed by its value, not by its spelling; each
    ``_target_`` by its key identity (:data:`KEYED_AS`)."""
    if OmegaConf.is_config(obj):
        return plain(OmegaConf.to_container(obj, resolve=True))
    if isinstance(obj, dict):
        out = {str(k): plain(v) for k, v in obj.items()}
        if isinstance(out.get("_target_"), str):
            out["_target_"] = KEYED_AS.get(out["_target_"], out["_target_"])
        return out
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def config_hash(obj: object) -> str:
    blob = json.dumps(plain(obj), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_sha256(folder: str | os.PathLike) -> str | None:
    """sha256 over a model folder's safetensors files (sorted by name, streamed): what names
    the exact weights that wrote a dataset. None for a folder without them."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()
