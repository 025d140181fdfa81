"""Position ids that restart at every question (``position_restart`` in a model spec): the
rule on hand-made rows, the model option, cached decoding and training that use it."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from genixer.models import build_tokenizer, build_vlm, load_vlm, processor_for, save_vlm
from genixer.models.positions import marker_ids, restart_position_ids
from genixer.training.module import InstructionTuningModule
from tests.conftest import TINY_VLM_SPEC

CORPUS = [
    "USER: Write a QA. ASSISTANT: Question: What color is the circle? Answer: red.</s>"
    "USER: How many circles are there? ASSISTANT: 2</s>",
    "Question: Is there a square?\nQuestion: Where is it?",
] * 20


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(CORPUS, vocab_size=300)


def ids_of(tok, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


def test_the_token_after_each_marker_takes_the_first_questions_position(tok):
    img = tok.convert_tokens_to_ids("<image>")
    markers = marker_ids(tok)
    assert ids_of(tok, "USER:") in markers and ids_of(tok, "Question:") in markers
    head = ids_of(tok, "USER: ") + [img] * 3 + ids_of(tok, "\nWrite a QA. ASSISTANT:")
    q1 = ids_of(tok, " Question: What color is the circle? Answer: red.")
    turn2 = ids_of(tok, "</s>USER: How many circles are there?")
    row = head + q1 + turn2
    pad = 2
    ids = torch.tensor([[0] * pad + row, row + [0] * pad])
    mask = torch.tensor([[0] * pad + [1] * len(row), [1] * len(row) + [0] * pad])
    pos = restart_position_ids(ids, mask, img, markers)
    first_text = len(ids_of(tok, "USER: ")) + 3 + len(ids_of(tok, "\n"))  # "Write"
    anchor = first_text  # position of the first token after the image and its newline
    for r, off in ((0, pad), (1, 0)):
        p = pos[r, off : off + len(row)].tolist()
        assert p[: len(head)] == list(range(len(head)))  # before the first marker: counts
        q_word = len(head) + len(ids_of(tok, " Question:"))  # " What"
        assert p[q_word] == anchor
        how = len(head) + len(q1) + len(ids_of(tok, "</s>USER:"))  # " How"
        assert p[how] == anchor
        assert p[how - 1] == anchor - 1 and p[-1] == anchor + len(row) - 1 - how
    no_marker = torch.tensor([head])  # an image and no marker after it: plain counts
    assert restart_position_ids(no_marker, None, img, markers).tolist() == [list(range(len(head)))]
    no_image = torch.tensor([ids_of(tok, "Question: Is there a square?")])
    assert restart_position_ids(no_image, None, img, markers).tolist() == [
        list(range(no_image.shape[1]))
    ]


def test_the_option_is_kept_in_the_saved_config_and_off_by_default(tok, tmp_path):
    torch.manual_seed(0)
    on = build_vlm({**TINY_VLM_SPEC, "position_restart": True}, tok)
    assert on.config.position_restart_markers == marker_ids(tok)
    save_vlm(on, tmp_path / "m")
    assert load_vlm(tmp_path / "m").config.position_restart_markers == marker_ids(tok)
    assert build_vlm(TINY_VLM_SPEC, tok).config.position_restart_markers is None


def test_cached_decoding_uses_the_restarted_positions(tok):
    """Every forward call of a cached ``generate`` gets the ids the whole sequence so far has
    under the restart rule (left padding included)."""
    torch.manual_seed(0)
    model = build_vlm({**TINY_VLM_SPEC, "position_restart": True}, tok).eval()
    proc = processor_for(model, tok)
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    items = [
        proc.encode(image, [("Write a QA. Question: What color is it?", None)], generation=True),
        proc.encode(image, [("Question: Is there a square?", None)], generation=True),
    ]
    batch = proc.collate(items, padding_side="left")
    seen = []
    model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["position_ids"]), with_kwargs=True
    )
    out = model.generate(**batch, max_new_tokens=5, do_sample=False, pad_token_id=proc.pad_id)
    n = batch["input_ids"].shape[1]
    mask = torch.cat([batch["attention_mask"], torch.ones_like(out[:, n:])], 1)
    markers = model.config.position_restart_markers
    expected = restart_position_ids(out, mask, model.config.image_token_index, markers)
    plain = (mask.cumsum(-1) - 1).clamp(min=0)
    assert not torch.equal(expected, plain)  # the prompts hold markers: the restart matters
    assert torch.equal(torch.cat(seen, dim=1), expected[:, : out.shape[1] - 1])


def test_training_uses_the_restarted_positions_and_refuses_jitter_with_them(tok):
    torch.manual_seed(0)
    model = build_vlm({**TINY_VLM_SPEC, "position_restart": True}, tok)
    proc = processor_for(model, tok)
    image = Image.new("RGB", (32, 32), (30, 30, 200))
    turns = [("Write a QA.", "Question: Is there a square? Answer: no."), ("Where?", "left")]
    batch = proc.collate([proc.encode(image, turns)], padding_side="right")
    seen = {}
    model.register_forward_pre_hook(lambda mod, args, kwargs: seen.update(kwargs), with_kwargs=True)
    InstructionTuningModule(model).training_step(batch, 0)
    expected = restart_position_ids(
        batch["input_ids"],
        batch["attention_mask"],
        model.config.image_token_index,
        model.config.position_restart_markers,
    )
    assert torch.equal(seen["position_ids"], expected)
    with pytest.raises(ValueError, match="both set position ids"):
        InstructionTuningModule(model, position_jitter=4)


def test_the_cli_override_reaches_the_generator_and_downstream_models(compose_cfg, tok):
    from genixer.utils import build

    cfg = compose_cfg(["+generator.model.spec.position_restart=true"])
    assert cfg.downstream.model.spec.position_restart is True  # downstream shares the spec
    model = build(cfg.generator.model, tokenizer=tok)
    assert model.config.position_restart_markers == marker_ids(tok)
    assert "position_restart" not in compose_cfg([]).generator.model.spec  # off: not in keys
