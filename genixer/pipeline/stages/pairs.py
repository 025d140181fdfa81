"""The pairs stage: the generator's training pairs with their two-level instructions. Only
each pair's instruction level depends on tau (the tau ablation re-runs this stage and the
generator's training, nothing before them)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from genixer.core.record import read_jsonl, write_jsonl
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.collect import collection_pairs, effective_tau

PAIRS = "pairs.jsonl"


def read_pairs(folder: Path) -> list[dict]:
    return list(read_jsonl(folder / PAIRS))


class Pairs(Stage):
    name, version, phase = "pairs", 1, "train_generator"
    reads = {"collect": "collect"}
    uses = {"world": "world"}

    def key(self, ctx: RunContext) -> dict:
        """The effective tau, not how it was spelt (``tau_all=0.2`` and a tau dict of 0.2
        everywhere give the same key)."""
        return {"tau": effective_tau(ctx.cfg.generator.collection), "seed": ctx.seed}

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        tau = effective_tau(ctx.cfg.generator.collection)
        pairs, _ = collection_pairs(ctx, inputs["world"].path, tau)
        write_jsonl(folder / PAIRS, pairs)
        generic = Counter(p["task"] for p in pairs if "+" not in p["template_id"])
        return {"pairs": len(pairs), "generic_only": dict(sorted(generic.items()))}
