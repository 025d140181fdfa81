"""The hf model family's contract, tested once for every family (transformers' ModelTesterMixin
idea): tiny random-weight checkpoints built from config (genixer.models.hf.tiny, no downloads),
saved and loaded by path, their chat template's loss mask, training through the project's
Lightning fit, batched seeded generation and P(Yes) scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from genixer.models.generation import generate, ignored_sampling
from genixer.models.hf import tiny
from genixer.models.hf.model import (
    UnsupportedCheckpointError,
    check_folder,
    load_model,
    load_processor,
)
from genixer.models.judging import yes_probability
from genixer.models.processor import IGNORE_INDEX
from genixer.training.data import EncodedDataset
from genixer.training.fit import fit
from genixer.training.roles import parameter_roles, trainable_names
from genixer.world.base import WorldImage
from tests.conftest import CPU_TRAINER

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "llava_onevision", "idefics3", "llava"]
TURNS = [("What color is the circle?", "red"), ("How many squares are there?", "2")]


def picture(color: str, size: int = 48) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(img).ellipse((8, 8, 40, 40), fill=color)
    return img


@pytest.fixture(scope="module", params=FAMILIES)
def folder(request, tmp_path_factory) -> Path:
    return tiny.build(request.param, tmp_path_factory.mktemp(request.param) / "ckpt")


@pytest.fixture(scope="module")
def loaded(folder):
    return load_model(folder), load_processor(folder)


def test_saved_folder_loads_by_path_with_every_weight(folder, loaded):
    model, _ = loaded
    again = load_model(folder)
    for (name, a), (_, b) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    check_folder(folder)  # a folder the family wrote passes its own checks


def test_loss_mask_is_the_templates_assistant_span(loaded):
    _, proc = loaded
    item = proc.encode(picture("red"), TURNS)
    ids, labels = item["input_ids"][0].tolist(), item["labels"][0].tolist()
    targets = [i for i, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    # What the template adds for each answer, read off the rendered text itself.
    spans = []
    for k in range(len(TURNS)):
        asked = proc.render([*TURNS[:k], (TURNS[k][0], None)], generation=True)
        answered = proc.render(TURNS[: k + 1], generation=False)
        assert answered.startswith(asked)
        spans.append(answered[len(asked) :])
    decoded = proc.tokenizer.decode(targets, skip_special_tokens=False)
    assert decoded == "".join(spans)
    assert all(answer in decoded for _, answer in TURNS)
    assert not any(question in decoded for question, _ in TURNS)
    assert targets.count(proc.eos_id) == len(TURNS)  # each answer ends with the end of turn


def test_trainable_roles_split_the_model(loaded):
    model, _ = loaded
    roles = parameter_roles(model)
    assert {"vision", "projector", "language"} == set(roles.values())
    no_vision = trainable_names(model, "no_vision")
    assert no_vision == {n for n, r in roles.items() if r != "vision"}
    assert trainable_names(model, "projector") < no_vision < trainable_names(model, "all")


def test_a_few_training_steps_lower_the_loss(folder, tmp_path):
    model, proc = load_model(folder), load_processor(folder)
    examples = []
    for color in ("red", "blue"):
        picture(color).save(tmp_path / f"{color}.png")
        image = WorldImage(id=color, split="train", path=f"{color}.png")
        examples += [(image, [(f"What color is the circle? {i}", color)]) for i in range(4)]
    dataset = EncodedDataset(examples, proc.encode, tmp_path)
    batch = proc.collate(dataset.items[:8])
    with torch.no_grad():
        before = float(model(**batch).loss)
    train = {"steps": 8, "batch_size": 8, "lr": 3e-3, "warmup_ratio": 0.0, "trainable": "all"}
    info = fit(
        model,
        dataset,
        proc.collate,
        train=train,
        trainer_cfg=CPU_TRAINER,
        seed=0,
        log_dir=tmp_path / "logs",
    )
    model.eval()
    with torch.no_grad():
        after = float(model(**batch).loss)
    assert info["steps"] == 8
    assert after < 0.8 * before, (before, after)


def test_batched_seeded_generation_equals_one_at_a_time(loaded):
    model, proc = loaded
    items = [
        (picture(c), [(q, None)])
        for c, q in [
            ("red", "Describe it."),
            ("blue", "What color?"),
            ("green", "Count the shapes."),
        ]
    ]
    seeds = [11, 22, 33]
    together = generate(model, proc, items, seeds, max_new_tokens=6, temperature=1.0)
    alone = [
        generate(model, proc, [it], [s], max_new_tokens=6, temperature=1.0)[0]
        for it, s in zip(items, seeds, strict=True)
    ]
    assert together == alone
    assert len(set(together)) > 1  # sampled, not a constant


def test_generation_pads_left_and_ignores_the_checkpoints_sampling(loaded):
    model, proc = loaded
    proc.tokenizer.padding_side = "right"  # the tokenizer's default never decides
    short, long = (
        proc.encode(picture("red"), [("Hi?", None)], True),
        proc.encode(picture("red"), [("A much longer question about the picture?", None)], True),
    )
    batch = proc.collate([short, long], padding_side="left")
    assert batch["attention_mask"][:, -1].tolist() == [1, 1]
    assert batch["attention_mask"][0, 0] == 0
    items, seeds = [(picture("red"), [("What color?", None)])], [5]
    plain = generate(model, proc, items, seeds, max_new_tokens=6, temperature=1.0)
    own = model.generation_config
    model.generation_config.repetition_penalty = 50.0  # a checkpoint's own defaults...
    model.generation_config.top_k = 1
    try:
        assert ignored_sampling(model) == {"repetition_penalty": 50.0, "top_k": 1}
        assert generate(model, proc, items, seeds, max_new_tokens=6, temperature=1.0) == plain
    finally:
        model.generation_config = own
        own.repetition_penalty, own.top_k = 1.0, 50


def test_p_yes_is_equal_between_batch_sizes(loaded):
    model, proc = loaded
    assert proc.yes_ids and proc.no_ids and not set(proc.yes_ids) & set(proc.no_ids)
    items = [
        (picture(c), f"Is the circle {c}? Answer Yes or No.")
        for c in ("red", "blue", "green", "yellow", "red")
    ]
    one = yes_probability(model, proc, items, batch_size=1)
    five = yes_probability(model, proc, items, batch_size=5)
    assert torch.allclose(torch.tensor(one), torch.tensor(five), atol=1e-5)
    assert all(0.0 < p < 1.0 for p in one)


# ------------------------------------------------------------------ refused folders
@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> Path:
    return tiny.build("qwen2_vl", tmp_path_factory.mktemp("qwen") / "ckpt")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_folder_without_safetensors_is_refused(qwen, tmp_path):
    bad = _copy(qwen, tmp_path / "bad")
    (bad / "model.safetensors").rename(bad / "pytorch_model.bin")
    with pytest.raises(UnsupportedCheckpointError, match="pickled weights"):
        check_folder(bad)


def test_a_folder_without_a_chat_template_is_refused(qwen, tmp_path):
    bad = _copy(qwen, tmp_path / "bad")
    (bad / "chat_template.jinja").unlink()
    with pytest.raises(UnsupportedCheckpointError, match="no chat template"):
        check_folder(bad)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model_type": "llama"}, "text-only model"),
        ({"model_type": "resnet"}, "not an image-text-to-text model"),
        ({"auto_map": {"AutoModel": "modeling.Model"}}, "remote code"),
    ],
)
def test_a_folder_of_another_kind_is_refused(qwen, tmp_path, change, reason):
    bad = _copy(qwen, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(UnsupportedCheckpointError, match=reason):
        check_folder(bad)


def test_an_image_the_processor_cannot_take_is_a_counted_failure(qwen, tmp_path):
    from genixer.pipeline.stages.generate import GENERATIONS, GenerationPredictor, parse_generations

    model, proc = load_model(qwen), load_processor(qwen)
    good, bad = picture("red"), Image.new("RGB", (2000, 5), "white")  # aspect ratio > 200
    reqs = [
        {
            "id": f"r{i}",
            "image_id": f"i{i}",
            "image": f"i{i}.png",
            "seed": i,
            "template_id": "t",
            "instruction": "Write a question and its answer.",
        }
        for i in range(2)
    ]
    decoding = {"max_new_tokens": 4, "temperature": 1.0}
    rows = GenerationPredictor(proc, tmp_path, decoding).predict(model, [good, bad], reqs)
    alone = GenerationPredictor(proc, tmp_path, decoding).predict(model, [good], reqs[:1])
    assert rows[0] == alone[0]  # the good image's record is as it is in any batch
    assert rows[1]["raw"] is None and "aspect ratio" in rows[1]["rejected"]
    with open(tmp_path / GENERATIONS, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    counts = parse_generations(
        tmp_path, "generic", ["common"], {"generator": "g", "decoding": {}}, {}
    )
    assert counts["parse_failure_reasons"]["image_rejected"] == 1


def test_a_fresh_projector_renews_only_the_projector(qwen):
    from genixer.pipeline.downstream_model import fresh_projector

    model = load_model(qwen)
    before = {n: p.clone() for n, p in model.named_parameters()}
    fresh_projector(model, seed=3)
    roles = parameter_roles(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    linear = {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and roles[f"{name}.weight"] == "projector"
    }
    assert changed and changed <= {n for n, r in roles.items() if r == "projector"}
    assert linear <= changed  # Qwen2-VL's merger: found inside the vision encoder
