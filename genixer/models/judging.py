"""A judge's P(Yes) for "is this question-answer pair true for the image?", for any judge
model: the Fuyu judge and every transformers chat model (``filter=vlm_judge``).

The processor gives ``encode_prompt(image, prompt)`` (the prompt ready for its first answer
token), ``collate(items, "left")`` and the token ids of the verdicts' spellings
(``yes_ids`` / ``no_ids``: every single-token form the tokenizer has); the score is the
probability mass on the yes forms at the first answer position.
"""

from __future__ import annotations

import torch
from PIL import Image

Item = tuple[Image.Image, str]


def to_model(batch: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """The batch on the model's device; floating tensors (pixels) in its dtype."""
    device, dtype = model.device, model.dtype
    return {
        k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in batch.items()
    }


@torch.no_grad()
def yes_probability(
    model,
    processor,
    items: list[Item],
    batch_size: int = 32,
    renormalize: bool = False,
) -> list[float]:
    """P("Yes") at the first answer position for each (image, prompt), in order.

    One forward pass per batch, left padded, logits of the last position only.
    ``renormalize=True`` returns P(Yes) / (P(Yes) + P(No)).
    """
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = processor.collate([processor.encode_prompt(im, pr) for im, pr in chunk], "left")
            logits = model(**to_model(batch, model), logits_to_keep=1).logits[:, -1]
            probs = logits.float().softmax(-1)
            p_yes = probs[:, processor.yes_ids].sum(-1)
            p_no = probs[:, processor.no_ids].sum(-1)
            score = p_yes / (p_yes + p_no) if renormalize else p_yes
            scores.extend(score.tolist())
    finally:
        model.train(was_training)
    return scores
