"""Throughput of a stage for ``summary.json`` (``stages.<name>.images_per_s`` and
``tokens_per_s``): what the stage measured itself (generation, scoring, one training run),
or, for a stage made of several training phases, their examples and tokens over their
training time. None where a stage has no such rate (or was re-used from before it had)."""

from __future__ import annotations


def stage_rates(info: dict) -> dict:
    images, tokens = info.get("images_per_s"), info.get("tokens_per_s")
    phases = [v for v in info.values() if isinstance(v, dict) and v.get("train_seconds")]
    if images is None and phases:
        seconds = sum(p["train_seconds"] for p in phases)
        images = round(sum(p.get("images_seen", 0) for p in phases) / seconds, 1)
        tokens = round(sum(p.get("tokens_seen", 0) for p in phases) / seconds, 1)
    return {"images_per_s": images, "tokens_per_s": tokens}
