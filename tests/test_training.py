"""The instruction-tuning module: which parameters each phase trains, and loss guards."""

from __future__ import annotations

import pytest
import torch

from genixer.models.llava.model import build_vlm
from genixer.models.tokenizer import build_tokenizer
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
OPTIM = {"lr": 1e-3, "warmup_ratio": 0.03}  # a phase's optimizer settings


@pytest.fixture(scope="module")
def model():
    tok = build_tokenizer(["USER: ASSISTANT: How many circles are there? 2"] * 4, 300)
    return build_vlm(SPEC, tok)


def trainable(m) -> set[str]:
    return {n for n, p in m.named_parameters() if p.requires_grad}


def test_phases_switch_trainable_parameters_both_ways(model):
    InstructionTuningModule(model, **OPTIM, trainable="projector")
    assert trainable(model) and all("multi_modal_projector" in n for n in trainable(model))
    InstructionTuningModule(model, **OPTIM, trainable="all")  # a later phase unfreezes again
    everything = trainable(model)
    assert any("language_model" in n for n in everything)
    assert any("vision_tower" in n for n in everything)
    # what can never get a gradient stays frozen in every phase
    assert not any("post_layernorm" in n for n in everything)
    InstructionTuningModule(model, **OPTIM, trainable="no_vision")
    assert not any("vision_tower" in n for n in trainable(model))
    assert any("multi_modal_projector" in n for n in trainable(model))
    with pytest.raises(ValueError, match="trainable"):
        InstructionTuningModule(model, **OPTIM, trainable="some")


def test_a_loaded_model_trains_in_train_mode(model):
    """from_pretrained returns a model in eval mode; Lightning keeps modes as it finds them."""
    model.eval()
    InstructionTuningModule(model, **OPTIM, trainable="no_vision")
    assert all(m.training for m in model.modules())


def test_non_finite_loss_stops_with_a_clear_message():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **batch):
            return type("Out", (), {"loss": self.w.sum() + float("nan")})()

    module = InstructionTuningModule(Bad(), **OPTIM, trainable="all")
    with pytest.raises(NonFiniteLossError, match="loss is nan"):
        module.training_step({"input_ids": torch.zeros(1, 2)}, 0)


def schedule_of(module: InstructionTuningModule, steps: int) -> tuple[torch.optim.Optimizer, list]:
    """The optimizer and the learning rate at each step of a ``steps``-step phase."""
    from types import SimpleNamespace

    module._trainer = SimpleNamespace(estimated_stepping_batches=steps)
    configured = module.configure_optimizers()
    opt, sched = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return opt, lrs


def test_a_phase_may_set_weight_decay_and_the_lr_floor(model):
    """The paper's recipes decay to 0 (``min_lr_ratio: 0.0``); a phase that leaves both keys
    out gets the module's recipe: no weight decay, a floor at a tenth of lr."""
    opt, lrs = schedule_of(InstructionTuningModule(model, **OPTIM, trainable="all"), 100)
    assert opt.param_groups[0]["weight_decay"] == 0.0
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)
    set_both = dict(OPTIM, weight_decay=0.05, min_lr_ratio=0.0)
    opt, lrs = schedule_of(InstructionTuningModule(model, **set_both, trainable="all"), 100)
    assert opt.param_groups[0]["weight_decay"] == 0.05
    assert lrs[-1] < 1e-6 and max(lrs) == pytest.approx(1e-3)
