"""The judge's training data: yes/no questions about the judge split's scenes.

The judge plays Fuyu's role, a third-party model that says whether a question-answer pair is
true of an image. Each judge image gets ``items_per_image`` fresh questions; half are paired
with their true answer (label ``Yes``), the rest with a wrong one (``No``), of which a share
``hard_negatives`` is confusable with the truth (off-by-one counts, another object's position
or name): the errors a generator actually makes. For yes/no questions the true answer is
itself drawn 50/50 (questions are redrawn until it matches), so that neither "yes" nor "no"
shown as the answer says anything about the label: the judge has to look at the image.
"""

from __future__ import annotations

import random

from genixer.record import QA
from genixer.tasks.base import judge_prompt
from genixer.world.questions import KINDS, random_question, wrong_answer

YES_NO = ("yes", "no")
MAX_REDRAWS = 20


def judge_examples(
    images, items_per_image: int, hard_negatives: float, seed: int
) -> list[tuple[object, tuple[str, str]]]:
    """``(image item, (judge prompt, "Yes" | "No"))`` pairs, the same for the same seed."""
    rng = random.Random(f"{seed}:judge")
    kinds = tuple(k.name for k in KINDS)
    examples = []
    for img in images:
        for _ in range(items_per_image):
            kind, q, truth = random_question(img.scene, rng, kinds)
            if truth in YES_NO:  # balance the truth, or the shown word alone predicts the label
                want = rng.choice(YES_NO)
                for _ in range(MAX_REDRAWS):
                    if truth == want:
                        break
                    kind, q, truth = random_question(img.scene, rng, (kind,))
            if truth is not None and rng.random() < 0.5:
                answer, label = truth, "Yes"
            else:
                answer = wrong_answer(img.scene, q, truth, rng, hard_negatives)
                label = "No"
            examples.append((img, (judge_prompt(QA(q, answer)), label)))
    return examples
