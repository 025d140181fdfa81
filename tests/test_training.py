"""The instruction-tuning module: which parameters each phase trains, and loss guards."""

from __future__ import annotations

import pytest
import torch

from genixer.models.tokenizer import build_tokenizer
from genixer.models.vlm import build_vlm
from genixer.training.module import InstructionTuningModule, NonFiniteLossError

SPEC = dict(
    image_size=32,
    patch_size=16,
    vision_hidden=16,
    vision_layers=2,
    vision_heads=2,
    vision_intermediate=32,
    text_hidden=16,
    text_layers=1,
    text_heads=2,
    text_intermediate=32,
    projector_type="mlp2x_gelu",
    max_position_embeddings=128,
)


@pytest.fixture(scope="module")
def model():
    tok = build_tokenizer(["USER: ASSISTANT: How many circles are there? 2"] * 4, 300)
    return build_vlm(SPEC, tok)


def trainable(m) -> set[str]:
    return {n for n, p in m.named_parameters() if p.requires_grad}


def test_phases_switch_trainable_parameters_both_ways(model):
    InstructionTuningModule(model, trainable="projector")
    assert trainable(model) and all("multi_modal_projector" in n for n in trainable(model))
    InstructionTuningModule(model, trainable="all")  # a later phase unfreezes again
    everything = trainable(model)
    assert any("language_model" in n for n in everything)
    assert any("vision_tower" in n for n in everything)
    # what can never get a gradient stays frozen in every phase
    assert not any("post_layernorm" in n for n in everything)
    InstructionTuningModule(model, trainable="no_vision")
    assert not any("vision_tower" in n for n in trainable(model))
    assert any("multi_modal_projector" in n for n in trainable(model))
    with pytest.raises(ValueError, match="trainable"):
        InstructionTuningModule(model, trainable="some")


def test_a_loaded_model_trains_in_train_mode(model):
    """from_pretrained returns a model in eval mode; Lightning keeps modes as it finds them."""
    model.eval()
    InstructionTuningModule(model, trainable="no_vision")
    assert all(m.training for m in model.modules())


def test_non_finite_loss_stops_with_a_clear_message():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **batch):
            return type("Out", (), {"loss": self.w.sum() + float("nan")})()

    module = InstructionTuningModule(Bad())
    with pytest.raises(NonFiniteLossError, match="loss is nan"):
        module.training_step({"input_ids": torch.zeros(1, 2)}, 0)


def test_position_jitter_moves_only_the_text_after_the_image(model):
    """``position_jitter``: each row's text after its last image token moves on by one
    seeded draw in 0..J; the image and what precedes it keep their positions; the same seed
    and step draw the same (a resumed run trains the same), and the model's loss sees it."""
    from genixer.models.vlm import num_image_tokens

    n = num_image_tokens(model)
    head = [1] + [model.config.image_token_index] * n  # BOS, then the image
    ids = torch.tensor([head + [7, 8, 9], head + [7, 8, 0]] * 8)
    width = n + 4
    module = InstructionTuningModule(model, position_jitter=5, seed=3)
    pos = module.jittered_positions(ids)
    assert pos.shape == ids.shape
    assert (pos[:, : n + 1] == torch.arange(n + 1)).all()  # BOS and image tokens untouched
    shift = pos[:, n + 1 :] - torch.arange(n + 1, width)
    assert (shift == shift[:, :1]).all() and shift.min() >= 0 and shift.max() <= 5
    assert len(set(shift[:, 0].tolist())) > 1  # rows draw their own shift
    assert torch.equal(
        InstructionTuningModule(model, position_jitter=5, seed=3).jittered_positions(ids), pos
    )
    plain = InstructionTuningModule(model).jittered_positions  # jitter 0: no shift at all
    assert torch.equal(plain(ids), torch.arange(width).expand(16, width))

    pixels = torch.rand(16, 3, 32, 32)
    with torch.no_grad():  # the model reads the positions (RoPE): its logits move
        still = model(input_ids=ids, pixel_values=pixels).logits
        moved = model(input_ids=ids, pixel_values=pixels, position_ids=pos).logits
    assert not torch.equal(still, moved)
    with pytest.raises(ValueError, match="position_jitter"):
        InstructionTuningModule(model, position_jitter=-1)
