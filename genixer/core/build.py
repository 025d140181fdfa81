"""The one route from config to object (``_target_`` + :func:`hydra.utils.instantiate`)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build(cfg: DictConfig | dict, **kwargs: Any) -> Any:
    """Instantiate a ``_target_`` config. Every buildable object goes through here, so a
    future allow-list of targets (Hydra 1.4) has one place to live."""
    if cfg is None or "_target_" not in cfg:
        raise ValueError(f"config has no _target_: {cfg}")
    return instantiate(cfg, _convert_="all", **kwargs)


def build_filter(cfg: DictConfig) -> Any:
    """A filter from ``conf/filter/*.yaml``: its own sub-configs (the model to build, the
    training recipe) reach it as plain dicts; it builds its models when it needs them."""
    return build(cfg, _recursive_=False)


def to_plain(cfg: Any) -> Any:
    """A resolved plain-python copy of a config node (for hashing and manifests)."""
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg
