"""Tokenizer, processor, tiny LLaVA/Shikra models and seeded batched generation."""

from __future__ import annotations

import os
import pickle

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from PIL import Image

from genixer.core.chat import ASSISTANT, IMAGE_TOKEN
from genixer.models import (
    SPECIAL_TOKENS,
    SeededSampler,
    build_tokenizer,
    build_vlm,
    generate,
    load_tokenizer,
    num_image_tokens,
    processor_for,
    save_tokenizer,
)
from genixer.models.generation import Phases
from genixer.models.processor import IGNORE_INDEX

CORPUS = [
    "Question: How many dogs are there? Answer: 4.",
    "Question: What sport is played? A. soccer\nB. football\nC. hockey\nD. basketball Answer: A",
    "Question: Where is the red circle in the image? Answer: [0.120,0.340,0.560,0.910]",
    "Question: Describe the region [0.125,0.5;0.25,0.75]. Answer: a blue square.",
    "Please provide a clear and direct question and answer after examining the image.",
] * 10

SPEC = {
    "image_size": 32,
    "patch_size": 16,
    "vision_hidden": 32,
    "vision_layers": 2,
    "vision_heads": 2,
    "vision_intermediate": 64,
    "text_hidden": 64,
    "text_layers": 2,
    "text_heads": 2,
    "text_intermediate": 128,
    "projector_type": "mlp2x_gelu",
    "max_position_embeddings": 256,
    "vision_pos_init_std": 0.5,
}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(CORPUS, vocab_size=400)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return build_vlm(SPEC, tok).eval()


@pytest.fixture(scope="module")
def proc(model, tok):
    return processor_for(model, tok, max_length=128)


def _image(color: str = "red", size: tuple[int, int] = (40, 30)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    img.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), color), (0, 0))
    return img


# ----------------------------------------------------------------------------- tokenizer
def test_tokenizer_special_ids_and_round_trip(tok, tmp_path):
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(
        range(len(SPECIAL_TOKENS))
    )
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.convert_tokens_to_ids(IMAGE_TOKEN) == 4
    texts = CORPUS[:5] + [
        "x\n\n(a, b); [1,2]  {z}\t~!@#$%^&*_-+=|\\/<>?'\"`",
        " leading and trailing ",
    ]
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    ids = tok.encode("Answer: 0.125")
    assert tok.bos_token_id not in ids  # no automatic <s>
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces[-5:] == ["0", ".", "1", "2", "5"]  # digits one by one
    # Deterministic, and saving/loading keeps everything.
    assert build_tokenizer(CORPUS, vocab_size=400).get_vocab() == tok.get_vocab()
    save_tokenizer(tok, tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    assert again.get_vocab() == tok.get_vocab()
    assert again.encode(texts[1], add_special_tokens=False) == tok.encode(
        texts[1], add_special_tokens=False
    )


# ----------------------------------------------------------------------------- processor
def test_processor_labels_and_image_tokens(proc, tok, model):
    turns = [("What is this?", "A red square."), ("Where?", "Top left [0.000,0.000,0.500,0.500].")]
    enc = proc.encode(_image(), turns)
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels)
    assert ids[0] == tok.bos_token_id and labels[0] == IGNORE_INDEX
    assert ids.count(proc.image_token_id) == proc.num_image_tokens == num_image_tokens(model) == 4
    targets = [t for t in labels if t != IGNORE_INDEX]
    assert tok.decode(targets) == " A red square.</s> Top left [0.000,0.000,0.500,0.500].</s>"
    # Every target position carries its own input token.
    assert all(lab in (IGNORE_INDEX, tid) for tid, lab in zip(ids, labels, strict=True))
    assert enc["pixel_values"].shape == (3, proc.image_size, proc.image_size)

    gen = proc.encode(_image(), [("What is this?", None)], generation=True)
    assert "labels" not in gen
    assert tok.decode(gen["input_ids"]).endswith(f"? {ASSISTANT}")
    assert gen["input_ids"] == ids[: len(gen["input_ids"])]  # prompt is a prefix of training ids

    with pytest.raises(ValueError, match="max_length"):
        proc.encode(_image(), [("long " * 200, "x")])
    with pytest.raises(ValueError):
        proc.encode(_image(), [("q", None)])  # training example without an answer
    assert pickle.loads(pickle.dumps(proc)).encode(_image(), turns)["input_ids"] == ids


def test_pixels_pad_to_square(proc):
    img = Image.new("RGB", (40, 10), (255, 255, 255))
    x = proc.pixels(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    # Padding has the mean colour, i.e. ~0 after normalization; the centre is white.
    assert x[:, 0, 16].abs().max() < 0.02
    white = (1.0 - torch.tensor(proc.image_mean)) / torch.tensor(proc.image_std)
    assert torch.allclose(x[:, 16, 16], white, atol=0.02)


def test_collate_left_and_right(proc):
    a = proc.encode(_image(), [("short", "yes")])
    b = proc.encode(_image(), [("a much longer question with many words", "no, it is not")])
    n_a, n_b = len(a["input_ids"]), len(b["input_ids"])
    right = proc.collate([a, b])
    assert right["input_ids"].shape == (2, n_b)
    assert right["attention_mask"][0].tolist() == [1] * n_a + [0] * (n_b - n_a)
    assert right["input_ids"][0, n_a:].eq(proc.pad_id).all()
    assert right["labels"][0, n_a:].eq(IGNORE_INDEX).all()
    assert right["pixel_values"].shape == (2, 3, 32, 32)
    left = proc.collate([a, b], padding_side="left")
    assert left["attention_mask"][0].tolist() == [0] * (n_b - n_a) + [1] * n_a
    assert left["input_ids"][0, n_b - n_a :].tolist() == a["input_ids"]
    gen = proc.encode(_image(), [("q", None)], generation=True)
    assert "labels" not in proc.collate([gen, gen], padding_side="left")
    with pytest.raises(ValueError):
        proc.collate([a, gen])


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("projector_type", ["mlp2x_gelu", "linear"])
def test_forward_backward(tok, projector_type):
    torch.manual_seed(1)
    model = build_vlm({**SPEC, "projector_type": projector_type}, tok)
    names = {n for n, _ in model.named_parameters() if "multi_modal_projector" in n}
    expected = "linear." if projector_type == "linear" else "linear_2."
    assert any(expected in n for n in names)
    proc = processor_for(model, tok)
    items = [
        proc.encode(_image("red"), [("What colour?", "red")]),
        proc.encode(_image("blue", (20, 50)), [("Describe.", "a blue square"), ("More?", "no")]),
    ]
    batch = proc.collate(items)
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # Everything trainable gets a gradient (what plain DDP needs), frozen = unused CLIP parts.
    assert all(p.grad is not None for _, p in trainable), [
        n for n, p in trainable if p.grad is None
    ]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all("encoder.layers.1." in n or "post_layernorm" in n for n in frozen)


# ----------------------------------------------------------------------------- generation
def test_generation_is_batch_invariant(model, proc):
    items = [
        (_image("red"), [("Ask one question.", None)]),
        (
            _image("blue", (20, 50)),
            [("Please provide a clear and direct question and answer.", None)],
        ),
        (_image("green"), [("Q", None)]),
        (_image("yellow", (50, 20)), [("What is here?", "A shape."), ("And its colour?", None)]),
    ]
    seeds = [11, 22, 33, 44]
    batched = generate(model, proc, items, seeds, max_new_tokens=12, temperature=1.0)
    alone = [
        generate(model, proc, [it], [s], max_new_tokens=12, temperature=1.0)[0]
        for it, s in zip(items, seeds, strict=True)
    ]
    assert batched == alone
    assert len(set(batched)) > 1  # sampling from a random model really varies
    reordered = generate(model, proc, items[::-1], seeds[::-1], max_new_tokens=12, temperature=1.0)
    assert reordered[::-1] == batched
    other_seed = generate(model, proc, items[:1], [12345], max_new_tokens=12, temperature=1.0)
    assert other_seed[0] != batched[0]
    greedy = generate(model, proc, items, seeds, max_new_tokens=6, temperature=0.0)
    assert greedy == generate(model, proc, items, [0, 0, 0, 0], max_new_tokens=6, temperature=0.0)


def test_seeded_sampler_rows_are_independent():
    torch.manual_seed(3)
    scores = torch.randn(3, 50)
    both = SeededSampler([5, 6, 7], temperature=1.0)(None, scores).argmax(-1)
    alone = [
        SeededSampler([s], temperature=1.0)(None, scores[i : i + 1]).argmax(-1).item()
        for i, s in enumerate([5, 6, 7])
    ]
    assert both.tolist() == alone
    nucleus = SeededSampler([5, 6, 7], temperature=1.0, top_p=1e-6)(None, scores).argmax(-1)
    assert torch.equal(nucleus, scores.argmax(-1))  # a tiny nucleus keeps only the top token


def test_phases_find_the_first_word_of_each_question():
    q = [7, 1]  # "Question:" as ids
    phases = Phases(1.0, question_markers=[q, [8, 1]])
    assert not phases.at_question_start([])
    assert phases.at_question_start(q)
    assert not phases.at_question_start(q + [3])  # inside the question
    assert phases.at_question_start(q + [3, 9, 1, 5, 8, 1])  # the next turn's question
    with pytest.raises(ValueError, match="question marker"):
        Phases(1.0, question_markers=[[]])


def test_seeded_sampler_samples_only_question_starts_at_their_temperature():
    """A row about to write a question's first word samples at the question temperature;
    any other row at the answer temperature (0: argmax); draws stay aligned with seeds."""
    torch.manual_seed(4)
    scores = torch.randn(2, 50)
    phases = Phases(1.0, question_markers=[[7, 1]])
    prompt = torch.zeros(2, 3, dtype=torch.long)
    sampler = SeededSampler([5, 6], temperature=0.0, phases=phases)
    sampler(prompt, scores)  # the first call fixes the prompt length
    ids = torch.cat([prompt, torch.tensor([[7, 1, 3, 4], [3, 4, 7, 1]])], 1)
    chosen = sampler(ids, scores).argmax(-1)
    assert chosen[0] == scores[0].argmax()  # inside a question: greedy
    free = SeededSampler([5, 6], temperature=1.0)
    free(None, scores)  # the same number of draws as above
    assert chosen[1] == free(None, scores).argmax(-1)[1]  # a question's first word: sampled


def test_generation_with_equal_phase_temperatures_is_plain_sampling(model, proc):
    items = [(_image("red"), [("Ask one question.", None)]), (_image("blue"), [("Q", None)])]
    plain = generate(model, proc, items, [3, 4], max_new_tokens=12, temperature=0.7)
    ids = [proc.tokenizer.encode(m, add_special_tokens=False) for m in (" is", "a")]
    phases = Phases(0.7, question_markers=ids)
    same = generate(model, proc, items, [3, 4], max_new_tokens=12, temperature=0.7, phases=phases)
    assert same == plain


def test_num_image_tokens_full_strategy(tok):
    config = build_vlm({**SPEC, "vision_feature_select_strategy": "full"}, tok).config
    assert num_image_tokens(config) == (32 // 16) ** 2 + 1
