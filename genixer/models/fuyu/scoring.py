"""The Fuyu judge's two scores of (image, prompt) items.

- :func:`yes_probability` (default): P("Yes") from the logits at the ``<0x04>`` position,
  batched and deterministic; optionally renormalized over {Yes, No}.
- :func:`sampled_score`: the original Genixer code's mode, kept for faithful reproduction:
  sample a short answer with top-k/top-p and take the geometric mean of the sampled tokens'
  probabilities after the warpers. It is NOT P(Yes) (a sampled "No" with high confidence
  scores high too) and it is random unless seeded; here each item is seeded with
  ``seed + index``. The original's off-by-one in the token alignment is not reproduced.
"""

from __future__ import annotations

import math

import torch
from PIL import Image
from transformers import FuyuForCausalLM

from genixer.models.fuyu.processor import JudgeProcessor

Item = tuple[Image.Image, str]


def _to_model(batch: dict[str, torch.Tensor], model: FuyuForCausalLM) -> dict[str, torch.Tensor]:
    device, dtype = model.device, model.dtype
    return {
        k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in batch.items()
    }


@torch.no_grad()
def yes_probability(
    model: FuyuForCausalLM,
    processor: JudgeProcessor,
    items: list[Item],
    batch_size: int = 32,
    renormalize: bool = False,
) -> list[float]:
    """P("Yes") at the first answer position for each (image, prompt), in order.

    One forward pass per batch, left padded, logits of the last position (``<0x04>``) only.
    ``renormalize=True`` returns P(Yes) / (P(Yes) + P(No)).
    """
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = processor.collate([processor.encode(im, pr) for im, pr in chunk], "left")
            logits = model(**_to_model(batch, model), logits_to_keep=1).logits[:, -1]
            probs = logits.float().softmax(-1)
            p_yes, p_no = probs[:, processor.yes_id], probs[:, processor.no_id]
            score = p_yes / (p_yes + p_no) if renormalize else p_yes
            scores.extend(score.tolist())
    finally:
        model.train(was_training)
    return scores


def _warp(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then top-p (nucleus) filtering of one logit vector; returns probabilities."""
    logits = logits.float().clone()
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = -math.inf
    if top_p < 1.0:
        probs = logits.softmax(-1)
        sorted_probs, order = probs.sort(descending=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs
        drop = mass_before >= top_p  # keep the smallest head reaching top_p (always >= 1)
        logits[order[drop]] = -math.inf
    return logits.softmax(-1)


@torch.no_grad()
def sampled_score(
    model: FuyuForCausalLM,
    processor: JudgeProcessor,
    items: list[Item],
    seed: int,
    *,
    max_new_tokens: int = 8,
    top_k: int = 10,
    top_p: float = 0.95,
) -> list[float]:
    """The original paper code's score (opt-in, for faithful reproduction); NOT P(Yes).

    For each item, sample up to ``max_new_tokens`` answer tokens (stopping at ``</s>``) with
    top-k then top-p filtering, and return the geometric mean of the sampled tokens'
    probabilities under the filtered, renormalized distribution. It is random by nature;
    item ``i`` uses a ``torch.Generator`` seeded with ``seed + i``, so it is reproducible.
    One item at a time with a KV cache: it is the slow baseline.
    """
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        for index, (image, prompt) in enumerate(items):
            generator = torch.Generator().manual_seed(seed + index)
            batch = _to_model(processor.collate([processor.encode(image, prompt)]), model)
            out = model(**batch, use_cache=True, logits_to_keep=1)
            log_probs: list[float] = []
            for _ in range(max_new_tokens):
                probs = _warp(out.logits[0, -1].cpu(), top_k, top_p)
                token = int(torch.multinomial(probs, 1, generator=generator))
                log_probs.append(math.log(float(probs[token])))
                if token == processor.eos_id:
                    break
                # Later steps feed the new token only; the image stays in the cache.
                out = model(
                    input_ids=torch.tensor([[token]], device=model.device),
                    cache=out.cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
            scores.append(math.exp(sum(log_probs) / len(log_probs)))
    finally:
        model.train(was_training)
    return scores
