"""CLIP-driven filtering: crop each record's box out of its image and score the crop against
the expression the record pairs with it (REC: the question's expression vs the answer box;
REG: the region in the question vs the answer's expression)."""

from __future__ import annotations

import random
from collections import Counter

from genixer.core.record import Record
from genixer.tasks.regions import box_and_text
from genixer.world.base import WorldImage, load_image
from genixer.world.referring import expressions


def clip_items(records: list[Record], root) -> tuple[list, list[str], Counter]:
    items, owners, skipped = [], [], Counter()
    for rec in records:
        pair = box_and_text(rec)
        if pair is None:
            skipped[f"unscorable_task:{rec.task}"] += 1
            continue
        image = load_image(root, rec.image)
        items.append((image, pair[0], pair[1]))
        owners.append(rec.id)
    return items, owners, skipped


def training_pairs(images: list[WorldImage], root, scorer, seed: int) -> list:
    """(object crop, one of its unique expressions) from the labeled judge split."""
    rng = random.Random(f"{seed}:clip-pairs")
    pairs = []
    for img in images:
        image = load_image(root, img)
        for text, obj in expressions(img.scene):
            crop = scorer.crop(image, img.scene.norm_box(obj))
            if crop is not None:
                pairs.append((crop, text))
    rng.shuffle(pairs)
    return pairs


def calibrate_threshold(scorer, pairs: list, seed: int, n: int = 512) -> dict:
    """The score that best separates matching (crop, its expression) from mismatched (crop,
    another object's expression) pairs of the labeled judge split (balanced accuracy).

    A CLIP's similarity scale is its own: OpenAI's ViT-L/14 puts matches near 0.3, a tiny
    CLIP trained for minutes squeezes every cosine into a narrow range. A threshold given as
    ``calibrated`` is read from here instead of being guessed per model.
    """
    rng = random.Random(f"{seed}:clip-calibration")
    sample = rng.sample(pairs, min(n, len(pairs)))
    if len(sample) < 2:
        raise ValueError("calibrating the CLIP threshold needs at least 2 labeled pairs")
    crops = [c for c, _ in sample]
    texts = [t for _, t in sample]
    others = [rng.choice([t for t in texts if t != text] or texts) for text in texts]
    pos = scorer._encode(crops, texts)
    neg = scorer._encode(crops, others)
    labeled = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    best, best_acc, below_pos, below_neg = labeled[0][0], 0.0, 0, 0
    for score, label in labeled:  # threshold = score: keeps it and everything above
        acc = 0.5 * ((len(pos) - below_pos) / len(pos) + below_neg / len(neg))
        if acc > best_acc:
            best, best_acc = score, acc
        below_pos += label
        below_neg += 1 - label
    return {
        "calibrated_threshold": round(best, 4),
        "calibration_balanced_accuracy": round(best_acc, 4),
        "calibration_pairs": len(sample),
    }
