"""The Fuyu judge: inputs, loss targets, P(Yes) scoring, sampled scoring, save/load."""

from __future__ import annotations

import pickle
import random

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from genixer.models.fuyu.model import build_judge
from genixer.models.fuyu.processor import IGNORE_INDEX, JudgeProcessor
from genixer.models.fuyu.scoring import sampled_score
from genixer.models.judging import yes_probability
from genixer.models.tokenizer import build_tokenizer
from tests.conftest import CONF

SPEC = {
    "image_size": 32,
    "patch_size": 16,
    "hidden": 64,
    "layers": 2,
    "heads": 4,
    "intermediate": 128,
    "max_position_embeddings": 256,
}
PROMPT = "Is 'Question: {q} Answer: {a}' true for this image? Please answer this question with Yes or No."
QUESTIONS = [
    ("What color is the image?", "red."),
    ("Is the picture mostly blue?", "no."),
    ("What is the main color here, if you look at the whole picture carefully?", "blue."),
    ("How many squares are there?", "1."),
    ("Which color?", "green."),
]


def colour_image(rgb: tuple[int, int, int], rng: random.Random, size: int = 32) -> Image.Image:
    """A solid-ish image: one colour plus per-pixel noise."""
    img = Image.new("RGB", (size, size))
    img.putdata(
        [tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in rgb) for _ in range(size * size)]
    )
    return img


RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 30)
CONF_FILTER = f"{CONF}/filter/fuyu.yaml"


def draws(per_image: int, *, explain: bool = False, answerable: float = 0.8) -> dict:
    """``judge_examples``' settings: ``per_image`` items, half the wrong answers confusable."""
    return {
        "items_per_image": per_image,
        "hard_negatives": 0.5,
        "explain": explain,
        "answerable": answerable,
    }


@pytest.fixture(scope="module")
def tokenizer():
    corpus = [PROMPT.format(q=q, a=a) for q, a in QUESTIONS] * 20 + ["Yes", "No"] * 20
    return build_tokenizer(corpus, vocab_size=400)


@pytest.fixture()
def judge(tokenizer):
    torch.manual_seed(0)
    return build_judge(SPEC, tokenizer)


@pytest.fixture(scope="module")
def processor(tokenizer):
    return JudgeProcessor(tokenizer, SPEC["image_size"], SPEC["patch_size"])


def items(n: int = 5, seed: int = 0) -> list[tuple[Image.Image, str]]:
    rng = random.Random(seed)
    return [
        (colour_image(rng.choice([RED, BLUE, GREEN]), rng), PROMPT.format(q=q, a=a))
        for q, a in (QUESTIONS * n)[:n]
    ]


def test_layout_and_targets(processor, tokenizer):
    img, prompt = items(1)[0]
    enc = processor.encode(img, prompt, "Yes")
    ids, labels = enc["input_ids"].tolist(), enc["labels"].tolist()
    # 2x2 patches: P P N P P N, then <s>, the prompt, <0x04>, the answer, </s>
    p, n = processor.patch_id, processor.row_end_id
    assert ids[:7] == [p, p, n, p, p, n, processor.bos_id]
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    assert ids[7 : 7 + len(prompt_ids)] == prompt_ids
    answer_pos = 7 + len(prompt_ids)
    assert ids[answer_pos] == processor.answer_id
    targets = [(i, t) for i, t in enumerate(labels) if t != IGNORE_INDEX]
    assert targets == [(answer_pos + 1, processor.yes_id), (answer_pos + 2, processor.eos_id)]
    assert processor.encode(img, prompt, "No")["labels"][answer_pos + 1] == processor.no_id
    assert enc["pixel_values"].shape == (4, 16 * 16 * 3)
    assert enc["pixel_values"].min() >= -1 and enc["pixel_values"].max() <= 1
    assert "labels" not in processor.encode(img, prompt)
    pickle.loads(pickle.dumps(processor))


def test_forward_backward_only_answer_targets(judge, processor):
    batch = processor.collate(
        [
            processor.encode(im, pr, ans)
            for (im, pr), ans in zip(items(3), ["Yes", "No", "Yes"], strict=True)
        ],
        padding_side="right",
    )
    assert set(batch) == {"input_ids", "attention_mask", "position_ids", "pixel_values", "labels"}
    out = judge(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert judge.model.vision_embed_tokens.weight.grad.abs().sum() > 0
    # 2 targets per example: the answer token and </s>
    assert int((batch["labels"] != IGNORE_INDEX).sum()) == 6


def test_yes_probability_batch_invariant(judge, processor):
    batch = items(5)
    alone = yes_probability(judge, processor, batch[2:3])
    together = yes_probability(judge, processor, batch, batch_size=5)
    split = yes_probability(judge, processor, batch, batch_size=2)
    assert all(0.0 <= s <= 1.0 for s in together)
    assert alone[0] == pytest.approx(together[2], abs=1e-5)
    assert together == pytest.approx(split, abs=1e-5)
    yes = yes_probability(judge, processor, batch, renormalize=True)
    lengths = {len(processor.encode(*it)["input_ids"]) for it in batch}
    assert len(lengths) > 1  # the batch really is padded
    # renormalized P(Yes) + P(No) = 1: P(No) from the same logits
    ids = [processor.yes_id, processor.no_id]
    enc = processor.collate([processor.encode(*it) for it in batch])
    with torch.no_grad():
        probs = judge(**enc).logits[:, -1].softmax(-1)[:, ids]
    no = (probs[:, 1] / probs.sum(-1)).tolist()
    assert [y + n for y, n in zip(yes, no, strict=True)] == pytest.approx([1.0] * 5, abs=1e-5)
    judge.train()
    yes_probability(judge, processor, batch[:1])
    assert judge.training  # the caller's mode is restored


def test_training_moves_yes_probability(judge, processor):
    rng = random.Random(1)
    data = []
    for i in range(64):
        colour = RED if i % 2 == 0 else rng.choice([BLUE, GREEN])
        q, a = rng.choice(QUESTIONS)
        answer = "Yes" if colour == RED else "No"
        data.append(processor.encode(colour_image(colour, rng), PROMPT.format(q=q, a=a), answer))
    probe = [(colour_image(RED, rng), PROMPT.format(q=QUESTIONS[0][0], a="red."))]
    probe += [(colour_image(BLUE, rng), PROMPT.format(q=QUESTIONS[0][0], a="red."))]
    # Renormalized over {Yes, No}: ~0.5 for an untrained judge (raw P(Yes) is ~1/vocab).
    before = yes_probability(judge, processor, probe, renormalize=True)
    opt = torch.optim.AdamW(judge.parameters(), lr=3e-3)
    judge.train()
    for step in range(60):
        chunk = [data[(step * 16 + j) % len(data)] for j in range(16)]
        loss = judge(**processor.collate(chunk, padding_side="right")).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    red, blue = yes_probability(judge, processor, probe, renormalize=True)
    assert red > before[0] + 0.3 and blue < before[1] - 0.3
    # Same prompt, different image: only reading the image at the right position separates them.
    red, blue = yes_probability(judge, processor, probe)
    assert red > 0.8 and blue < 0.2


def test_sampled_score_reproducible(judge, processor):
    batch = items(4)
    first = sampled_score(judge, processor, batch, seed=7)
    assert first == sampled_score(judge, processor, batch, seed=7)
    assert all(0.0 < s <= 1.0 for s in first)
    # item i is seeded with seed + i, independent of the other items
    assert sampled_score(judge, processor, batch[1:], seed=8) == first[1:]


def test_bad_spec_refused(tokenizer):
    with pytest.raises(ValueError, match="missing"):
        build_judge({"image_size": 32}, tokenizer)
    with pytest.raises(ValueError, match="multiple"):
        build_judge({**SPEC, "image_size": 40}, tokenizer)


def test_judge_items_shown_yes_or_no_says_nothing_about_the_label(tmp_path):
    """Existence questions: the true answer is drawn 50/50, so 'Answer: yes' and 'Answer: no'
    are labelled Yes at the same rate and the judge must look at the image."""
    from genixer.filters.judge_data import judge_examples
    from genixer.sources.shapes import ShapesWorld

    images = ShapesWorld(seed=3, splits={"judge": 300}).materialize(tmp_path)["judge"]
    rates = {"yes": [0, 0], "no": [0, 0]}
    for _, (prompt, label) in judge_examples(images, 0, **draws(40)):
        shown = prompt.split("Answer: ", 1)[1].split("'")[0].strip().lower()
        if shown in rates:  # only the yes/no kinds answer with these
            rates[shown][0] += label == "Yes"
            rates[shown][1] += 1
    assert min(n for _, n in rates.values()) > 600
    p_yes = {k: y / n for k, (y, n) in rates.items()}
    assert abs(p_yes["yes"] - p_yes["no"]) < 0.045, p_yes  # unbalanced items: 0.06 apart here


def test_multi_turn_sequence_targets_every_answer(processor, tokenizer):
    """Dense VQA turns for the judge: one image, several answered prompts; labels on each
    answer and its </s>; one turn encodes exactly like a single judge item."""
    img, prompt = items(1)[0]
    one = processor.encode_turns(img, [(prompt, "Yes")])
    assert one["input_ids"].tolist() == processor.encode(img, prompt, "Yes")["input_ids"].tolist()
    assert one["labels"].tolist() == processor.encode(img, prompt, "Yes")["labels"].tolist()
    turns = [("What color is it?", "red"), ("How many squares are there?", "1")]
    enc = processor.encode_turns(img, turns)
    ids, labels = enc["input_ids"].tolist(), enc["labels"].tolist()
    assert ids.count(processor.answer_id) == 2 and ids.count(processor.eos_id) == 2
    targets = [t for t in labels if t != IGNORE_INDEX]
    want = []
    for _, answer in turns:
        want += [*tokenizer.encode(answer, add_special_tokens=False), processor.eos_id]
    assert targets == want
    with pytest.raises(ValueError, match="at least one turn"):
        processor.encode_turns(img, [])


def test_judge_vqa_examples_are_true_dense_conversations(tmp_path):
    from genixer.filters.judge_data import vqa_examples
    from genixer.sources.shapes import ShapesWorld
    from genixer.world.questions import true_answer

    images = ShapesWorld(seed=3, splits={"judge": 20}).materialize(tmp_path)["judge"]
    examples = vqa_examples(images, 2, seed=0)
    assert len(examples) == 40 and vqa_examples(images, 2, seed=0) == examples
    assert vqa_examples(images, 0, seed=0) == []
    for img, turns in examples:
        assert len(turns) >= 4  # every kind the scene allows, once
        for q, a in turns:
            assert true_answer(img.scene, q)[1] == a


def test_explained_verdicts_start_with_the_verdict_and_state_the_truth(tmp_path, processor):
    """``filter.train.explain``: the same items, the answer ``Yes, it is 2.`` / ``No, it is
    red.``; the verdict stays the first answer token (where P(Yes) is read), and what
    follows is the scene's true answer to the question."""
    from genixer.filters.judge_data import judge_examples
    from genixer.sources.shapes import ShapesWorld
    from genixer.world.questions import true_answer

    images = ShapesWorld(seed=5, splits={"judge": 30}).materialize(tmp_path)["judge"]
    plain = judge_examples(images, 1, **draws(6))
    explained = judge_examples(images, 1, **draws(6, explain=True))
    assert [(i.id, p) for i, (p, _) in plain] == [(i.id, p) for i, (p, _) in explained]
    for (img, (prompt, label)), (_, (_, answer)) in zip(plain, explained, strict=True):
        assert answer.startswith(f"{label}, ")
        question = prompt.split("Question: ", 1)[1].split(" Answer: ", 1)[0]
        truth = true_answer(img.scene, question)[1]
        assert answer.endswith(f"it is {truth}." if truth is not None else "single answer.")
        first = processor.encode(items(1)[0][0], prompt, answer)["labels"]
        assert [t for t in first.tolist() if t != IGNORE_INDEX][0] == (
            processor.yes_id if label == "Yes" else processor.no_id
        )


def test_fewer_answerable_draws_teach_more_questions_without_a_single_answer(tmp_path):
    """``filter.train.answerable``: a generator's commonest error is a question with no single
    answer in its scene; the rest of the draws have random params, so more of them lack one
    (and are labelled No), and the items stay the same for the same seed."""
    from genixer.filters.judge_data import NO_SINGLE_ANSWER, judge_examples
    from genixer.sources.shapes import ShapesWorld

    images = ShapesWorld(seed=5, splits={"judge": 100}).materialize(tmp_path)["judge"]

    def no_single(answerable: float) -> tuple[int, set]:
        drawn = judge_examples(images, 1, **draws(10, explain=True, answerable=answerable))
        labels = {a.split(",")[0] for _, (_, a) in drawn if NO_SINGLE_ANSWER in a}
        return sum(NO_SINGLE_ANSWER in a for _, (_, a) in drawn), labels

    few, labels = no_single(0.8)
    many, more_labels = no_single(0.3)
    assert labels == more_labels == {"No"}
    assert many > 2 * few > 0
    assert judge_examples(images, 1, **draws(3)) == judge_examples(images, 1, **draws(3))
    # the default is the earlier behaviour (before the knob: 0.8 of the draws answerable)
    assert OmegaConf.load(CONF_FILTER).train.answerable == 0.8
