"""The judge's training data: yes/no questions about the judge split's scenes.

The judge plays Fuyu's role, a third-party model that says whether a question-answer pair is
true of an image. Each judge image gets ``items_per_image`` fresh questions; half are paired
with their true answer (label ``Yes``), the rest with a wrong one (``No``), of which a share
``hard_negatives`` is confusable with the truth (off-by-one counts, another object's position
or name): the errors a generator actually makes. For yes/no questions the true answer is
itself drawn 50/50 (questions are redrawn until it matches), so that neither "yes" nor "no"
shown as the answer says anything about the label: the judge has to look at the image.

A yes/no label that depends on image and answer jointly, and on neither alone, gives no
gradient for looking at the image until the model can already compare: a judge trained on
it alone learned the text's priors and stayed blind within every question kind. Two ways to
give it a signal that depends on the image alone:

- ``explain`` (the default in ``conf/filter/fuyu.yaml``): the answer is the verdict followed
  by the scene's true answer, ``No, it is 2.``; the verdict stays the first answer token,
  where P(Yes) is read. Measured: AUROC 0.690 -> 0.703, 0.738 with the judge's own vision
  pretraining.
- ``vqa_examples``: dense VQA conversations about the same images in separate sequences
  (a judge item never sees an answer in its context). Measured at 2 per image: 0.664.
"""

from __future__ import annotations

import random

from genixer.core.record import QA
from genixer.tasks.base import judge_prompt
from genixer.world.questions import KINDS, plain_conversation, random_question, wrong_answer

YES_NO = ("yes", "no")
MAX_REDRAWS = 20


NO_SINGLE_ANSWER = "there is no single answer"


def verdict(label: str, truth: str | None, explain: bool) -> str:
    """The judge's training answer: ``Yes`` / ``No``, or with ``explain`` the verdict
    followed by the true answer (``No, it is 2.``). The verdict is still the first token,
    where the score is read; the explanation is a dense target that correlates with the
    image alone, so the judge learns to see instead of learning only the text's priors
    (a yes/no bit that depends on image and answer jointly gives no such gradient)."""
    if not explain:
        return label
    return f"{label}, {NO_SINGLE_ANSWER}." if truth is None else f"{label}, it is {truth}."


def judge_examples(
    images,
    seed: int,
    *,
    items_per_image: int,
    hard_negatives: float,
    explain: bool,
    answerable: float,
) -> list[tuple[object, tuple[str, str]]]:
    """``(image item, (judge prompt, answer))`` pairs, the same for the same seed; the answer
    is the verdict (``Yes`` / ``No``), explained when ``explain`` (see :func:`verdict`).
    ``answerable``: the share of questions drawn valid for their scene; the rest have random
    parameters, which may leave them without a single answer ("What color is the circle?"
    with two circles): a generator's most common error, which the judge must reject."""
    rng = random.Random(f"{seed}:judge")
    kinds = tuple(k.name for k in KINDS)
    examples = []
    for img in images:
        for _ in range(items_per_image):
            kind, q, truth = random_question(img.scene, rng, kinds, answerable)
            if truth in YES_NO:  # balance the truth, or the shown word alone predicts the label
                want = rng.choice(YES_NO)
                for _ in range(MAX_REDRAWS):
                    if truth == want:
                        break
                    kind, q, truth = random_question(img.scene, rng, (kind,), answerable)
            if truth is not None and rng.random() < 0.5:
                answer, label = truth, "Yes"
            else:
                answer = wrong_answer(img.scene, q, truth, rng, hard_negatives)
                label = "No"
            examples.append((img, (judge_prompt(QA(q, answer)), verdict(label, truth, explain))))
    return examples


def training_examples(train: dict, images, seed: int) -> list:
    """A judge's training examples from its ``filter.train`` block: verdicts on the judge
    split's scenes as one-turn conversations, plus ``vqa_per_image`` VQA conversations."""
    items = judge_examples(
        images,
        seed,
        items_per_image=train["items_per_image"],
        hard_negatives=train["hard_negatives"],
        explain=bool(train["explain"]),
        answerable=float(train["answerable"]),
    )
    return [(img, [item]) for img, item in items] + vqa_examples(
        images, int(train.get("vqa_per_image", 0)), seed
    )


def vqa_examples(images, per_image: int, seed: int) -> list[tuple[object, list[tuple[str, str]]]]:
    """``(image item, [(question, answer), ...])``: ``per_image`` fresh multi-turn VQA
    conversations per judge image, the same for the same seed."""
    rng = random.Random(f"{seed}:judge_vqa")
    return [
        (img, [(t.question, t.answer) for t in plain_conversation(img.scene, rng)])
        for img in images
        for _ in range(per_image)
    ]
