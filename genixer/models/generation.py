"""Batched generation whose output per record depends only on (model, image, prompt, seed).

HF ``generate`` samples with one global RNG for the whole batch, so a record's text would
change with its batch and position. Here every row gets its own ``torch.Generator`` seeded
from the record's seed, drawing exactly one uniform number per step, and the sampling is
done inside a ``LogitsProcessor`` that returns a one-hot score; ``generate`` then runs
greedy (``do_sample=False``) and just follows it. Log-probabilities are rounded before
sampling so that the tiny float differences between batch shapes (different padding,
different matmul tiling) almost never change a draw.

That sampler runs on the CPU (``generate.sampler=cpu``, the default). ``sampler="device"``
uses :class:`~genixer.models.device_sampler.DeviceSampler` instead: the same contract, its
random numbers hashed from (seed, step, token) on the model's device, for GPU runs.
"""

from __future__ import annotations

import torch
from PIL import Image
from transformers import GenerationConfig, LogitsProcessorList, PreTrainedModel

from genixer.core.chat import Turn
from genixer.models.device_sampler import DeviceSampler
from genixer.models.processor import ChatProcessor
from genixer.models.sampling import LOGPROB_DECIMALS, Phases, SeededProcessor

__all__ = [
    "DEFAULT_SAMPLER",
    "LOGPROB_DECIMALS",
    "DeviceSampler",
    "Phases",
    "SeededSampler",
    "generate",
]


class SeededSampler(SeededProcessor):
    """Sample each row with its own seeded generator; return scores greedy will follow.

    Args:
        seeds: one seed per batch row.
        temperature: >= 0; the logits are divided by it before the softmax (0: argmax).
        top_p: optional nucleus cut (keep the most likely tokens whose mass reaches top_p).
        decimals: log-probabilities are rounded to this many decimals before sampling.
        phases: optional :class:`Phases`: a row about to write a question's first word
            samples it at ``phases.question_temperature``, every other token at
            ``temperature``.

    Every row draws exactly one number per step whatever its temperature, so a row's draws
    stay aligned with its seed.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generators: list[torch.Generator] | None = None

    def _generators(self) -> list[torch.Generator]:
        # Created on first use (one generate call = one sampler); CPU generators, since the
        # sampling itself runs on CPU, whatever the model's device.
        if self.generators is None:
            self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]
        return self.generators

    def _temperatures(self, input_ids: torch.LongTensor | None, rows: int) -> torch.Tensor:
        """Each row's temperature for this step (float64, CPU)."""
        if self.phases is None:
            return torch.full((rows,), self.temperature, dtype=torch.float64)
        if self.prompt_len is None:  # the first call sees the (left-padded) prompt alone
            self.prompt_len = input_ids.shape[1]
        new = input_ids[:, self.prompt_len :].tolist()
        qt = self.phases.question_temperature
        return torch.tensor(
            [qt if self.phases.at_question_start(row) else self.temperature for row in new],
            dtype=torch.float64,
        )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.check_rows(scores)
        temps = self._temperatures(input_ids, scores.shape[0]).unsqueeze(1)
        greedy = temps.squeeze(1) == 0
        # float64 on CPU: the same rounded numbers give the same sums whatever the batch (CPU
        # sort/cumsum/searchsorted work row by row, so a row's result ignores its neighbours).
        logits = scores.detach().double().cpu()
        logp = torch.log_softmax(logits / temps.clamp(min=1e-6), dim=-1)
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
        chosen = order.gather(1, torch.minimum(index, last)).squeeze(1)
        if greedy.any():  # rows at temperature 0 take the argmax (first on ties)
            chosen = torch.where(greedy, logits.argmax(-1), chosen)
        chosen = chosen.to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=scores.device), chosen] = 0.0
        return out


# generate.sampler: cpu (the default: every record measured so far came from it) | device
# (the counter-based stream on the model's device, for GPU runs).
SAMPLERS = {"cpu": SeededSampler, "device": DeviceSampler}
DEFAULT_SAMPLER = "cpu"
# With a static cache its length is rounded up to this, so a compiled decoder sees few
# distinct shapes (each new one recompiles) while prompt lengths vary from batch to batch.
STATIC_CACHE_BUCKET = 256


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    processor: ChatProcessor,
    items: list[tuple[Image.Image | torch.Tensor, list[Turn]]],
    seeds: list[int],
    *,
    max_new_tokens: int,
    temperature: float = 0.2,
    top_p: float | None = None,
    stats: dict | None = None,
    phases: Phases | None = None,
    sampler: str = DEFAULT_SAMPLER,
    compile: bool = False,
) -> list[str]:
    """Generate one answer per ``(image, turns)`` item in a single batched call.

    The last turn of each item must have answer ``None``. ``temperature == 0`` is greedy;
    otherwise row ``i`` is sampled with a generator seeded by ``seeds[i]``, so an item's text
    does not depend on the other items in the batch. A checkpoint's own generation config
    (:func:`ignored_sampling`) never applies. Stops at the processor's ``eos_id``; returns
    only the new text, special tokens removed and stripped. ``stats``, if given, gets ``new_tokens``: per
    item, how many tokens it generated (up to and including ``</s>``). ``phases`` samples
    questions at their own temperature (see :class:`Phases`). ``sampler`` picks the seeded
    sampler (``SAMPLERS``). ``compile=True`` decodes with a static KV cache, which
    transformers compiles (CUDA graphs) on a GPU; on the CPU it runs uncompiled.
    """
    if len(items) != len(seeds):
        raise ValueError(f"{len(items)} items but {len(seeds)} seeds")
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    if not items:
        return []
    batch = _model_batch(model, processor, items)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        use_cache=True,
        num_beams=1,
        eos_token_id=processor.eos_id,
        pad_token_id=processor.pad_id,
        bos_token_id=processor.bos_id,
        **(_static_cache(batch["input_ids"].shape[1] + max_new_tokens) if compile else {}),
    )
    processors = LogitsProcessorList()
    if temperature > 0 or phases is not None:
        processors.append(SAMPLERS[sampler](seeds, temperature, top_p, phases=phases))
    out = _generate_only_as_told(model, batch, config, processors)
    texts, counts = _decode_new_tokens(processor, out[:, batch["input_ids"].shape[1] :].tolist())
    if stats is not None:
        stats["new_tokens"] = counts
    return texts


def _generate_only_as_told(model, batch: dict, config, processors) -> torch.Tensor:
    """``model.generate`` in eval mode with ``config`` alone: transformers fills every value
    left None from the model's own generation_config (a checkpoint's top_k,
    repetition_penalty...), so that one is blanked for the call."""
    was_training, own = model.training, model.generation_config
    model.eval()
    model.generation_config = GenerationConfig()
    try:
        return model.generate(**batch, generation_config=config, logits_processor=processors)
    finally:
        model.train(was_training)
        model.generation_config = own


# Generation config keys that say nothing about how tokens are chosen.
NOT_SAMPLING = ("_", "output_", "use_cache", "return_dict", "transformers_version", "pad_token")
NOT_SAMPLING += ("bos_token", "eos_token", "decoder_start_token")


def ignored_sampling(model: PreTrainedModel) -> dict:
    """What the model's own generation config would have set besides token ids: reported
    as not used (``generate.*`` alone decides the sampling)."""
    own = getattr(model, "generation_config", None)
    if own is None:
        return {}
    return {k: v for k, v in own.to_diff_dict().items() if not k.startswith(NOT_SAMPLING)}


def _static_cache(length: int) -> dict:
    """Generation config keys for a static KV cache of at least ``length`` positions."""
    bucket = -(-length // STATIC_CACHE_BUCKET) * STATIC_CACHE_BUCKET
    return {"cache_implementation": "static", "max_cache_len": bucket}


def _model_batch(
    model: PreTrainedModel,
    processor: ChatProcessor,
    items: list[tuple[Image.Image | torch.Tensor, list[Turn]]],
) -> dict[str, torch.Tensor]:
    """Encode and left-pad the items into one batch on the model's device.

    Left padding puts every prompt's last token in the last column, where generation
    continues; pixel values take the model's dtype, the rest keeps its own.
    """
    encoded = [processor.encode(image, turns, generation=True) for image, turns in items]
    batch = processor.collate(encoded, padding_side="left")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["pixel_values"] = batch["pixel_values"].to(dtype)
    return batch


def _decode_new_tokens(
    processor: ChatProcessor, new_tokens: list[list[int]]
) -> tuple[list[str], list[int]]:
    """Each row's text up to its first ``</s>``, and how many tokens it generated.

    A row that stopped counts its ``</s>`` (whatever padding follows it, since other rows
    ran longer, is dropped); a row cut by ``max_new_tokens`` counts every new token.
    """
    texts, counts = [], []
    for row in new_tokens:
        counts.append(len(row))
        if processor.eos_id in row:
            row = row[: row.index(processor.eos_id)]
            counts[-1] = len(row) + 1
        texts.append(processor.decode(row))
    return texts, counts
