"""Batched generation whose output per record depends only on (model, image, prompt, seed).

HF ``generate`` samples with one global RNG for the whole batch, so a record's text would
change with its batch and position. Here every row gets its own ``torch.Generator`` seeded
from the record's seed, drawing exactly one uniform number per step, and the sampling is
done inside a ``LogitsProcessor`` that returns a one-hot score; ``generate`` then runs
greedy (``do_sample=False``) and just follows it. Log-probabilities are rounded before
sampling so that the tiny float differences between batch shapes (different padding,
different matmul tiling) almost never change a draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, PreTrainedModel

from genixer.chat import Turn
from genixer.models.processor import ChatProcessor

LOGPROB_DECIMALS = 4


class SeededSampler(LogitsProcessor):
    """Sample each row with its own seeded generator; return scores greedy will follow.

    Args:
        seeds: one seed per batch row.
        temperature: > 0; the logits are divided by it before the softmax.
        top_p: optional nucleus cut (keep the most likely tokens whose mass reaches top_p).
        decimals: log-probabilities are rounded to this many decimals before sampling.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        temperature: float,
        top_p: float | None = None,
        decimals: int = LOGPROB_DECIMALS,
    ) -> None:
        if temperature <= 0:
            raise ValueError("SeededSampler needs temperature > 0 (use greedy for 0)")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        self.seeds = [int(s) for s in seeds]
        self.temperature = float(temperature)
        self.top_p = top_p
        self.scale = 10.0**decimals
        self.generators: list[torch.Generator] | None = None

    def _generators(self) -> list[torch.Generator]:
        # Created on first use (one generate call = one sampler); CPU generators, since the
        # sampling itself runs on CPU, whatever the model's device.
        if self.generators is None:
            self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]
        return self.generators

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.seeds):
            raise ValueError(f"{scores.shape[0]} rows but {len(self.seeds)} seeds")
        # float64 on CPU: the same rounded numbers give the same sums whatever the batch (CPU
        # sort/cumsum/searchsorted work row by row, so a row's result ignores its neighbours).
        logp = torch.log_softmax(scores.detach().double().cpu() / self.temperature, dim=-1)
        logp = torch.round(logp * self.scale) / self.scale
        # Descending order, ties by token id (stable sort): a fixed order for the inverse CDF.
        p_sorted, order = torch.sort(logp.exp(), dim=-1, descending=True, stable=True)
        cum = torch.cumsum(p_sorted, dim=-1)
        last = torch.full((cum.shape[0], 1), cum.shape[1] - 1, dtype=torch.long)
        if self.top_p is not None:  # keep the shortest head whose mass reaches top_p
            head = torch.searchsorted(cum, self.top_p * cum[:, -1:])
            last = torch.minimum(head, last)
        total = cum.gather(1, last)
        # One draw per row per step from the row's own generator.
        u = torch.stack(
            [torch.rand((), generator=g, dtype=torch.float64) for g in self._generators()]
        )
        index = torch.searchsorted(cum, u.unsqueeze(1) * total, right=True)
        chosen = order.gather(1, torch.minimum(index, last)).squeeze(1).to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=scores.device), chosen] = 0.0
        return out


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    processor: ChatProcessor,
    items: list[tuple[Image.Image | torch.Tensor, list[Turn]]],
    seeds: list[int],
    max_new_tokens: int,
    temperature: float = 0.2,
    top_p: float | None = None,
    stats: dict | None = None,
) -> list[str]:
    """Generate one answer per ``(image, turns)`` item in a single batched call.

    The last turn of each item must have answer ``None``. ``temperature == 0`` is greedy;
    otherwise row ``i`` is sampled with a generator seeded by ``seeds[i]``, so an item's text
    does not depend on the other items in the batch. Stops at ``</s>``; returns only the new
    text, special tokens removed and stripped. ``stats``, if given, gets ``new_tokens``: per
    item, how many tokens it generated (up to and including ``</s>``).
    """
    if len(items) != len(seeds):
        raise ValueError(f"{len(items)} items but {len(seeds)} seeds")
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    if not items:
        return []
    encoded = [processor.encode(image, turns, generation=True) for image, turns in items]
    batch = processor.collate(encoded, padding_side="left")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["pixel_values"] = batch["pixel_values"].to(dtype)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        use_cache=True,
        num_beams=1,
        eos_token_id=processor.eos_id,
        pad_token_id=processor.pad_id,
        bos_token_id=processor.bos_id,
    )
    processors = LogitsProcessorList()
    if temperature > 0:
        processors.append(SeededSampler(seeds, temperature, top_p))
    was_training = model.training
    model.eval()
    try:
        out = model.generate(**batch, generation_config=config, logits_processor=processors)
    finally:
        model.train(was_training)
    new_tokens = out[:, batch["input_ids"].shape[1] :].tolist()
    texts, counts = [], []
    for row in new_tokens:
        counts.append(len(row))
        if processor.eos_id in row:
            row = row[: row.index(processor.eos_id)]
            counts[-1] = len(row) + 1
        texts.append(processor.decode(row))
    if stats is not None:
        stats["new_tokens"] = counts
    return texts
