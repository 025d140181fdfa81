"""The Fuyu judge's sampled score of (image, prompt) items (its default score, P(Yes), is
:func:`genixer.models.judging.yes_probability`, shared by every judge).

- :func:`sampled_score`: the original Genixer code's mode, kept for faithful reproduction:
  sample a short answer with top-k/top-p and take the geometric mean of the sampled tokens'
  probabilities after the warpers. It is NOT P(Yes) (a sampled "No" with high confidence
  scores high too) and it is random unless seeded; here each item is seeded with
  ``seed + index``. The original's off-by-one in the token alignment is not reproduced.
"""

from __future__ import annotations

import math

import torch
from transformers import FuyuForCausalLM

from genixer.models.fuyu.processor import JudgeProcessor
from genixer.models.judging import Item, to_model


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
            batch = to_model(processor.collate([processor.encode(image, prompt)]), model)
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
