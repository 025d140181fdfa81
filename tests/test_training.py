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
