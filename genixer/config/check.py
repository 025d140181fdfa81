"""Checking a composed config before any stage runs (filled in by the schema)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def check_config(cfg) -> None:
    return None
