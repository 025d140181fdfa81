"""Every trainer option composes and every ``_target_``'s arguments fit its callable.

The GPU strategies cannot be built on a CPU machine (Lightning refuses a CPU accelerator for
DeepSpeed), so each config node with a ``_target_`` is checked against the signature of the
callable it names, argument by argument, and values Lightning would refuse are caught here.
Where deepspeed imports (``requirements/gpu.txt``), the DeepSpeed strategy is built for real.
The two GPU flags (TF32, gradient checkpointing) are callbacks and run on the CPU.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import get_method, instantiate
from lightning.fabric.connector import _PRECISION_INPUT_STR
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from genixer.core.build import build
from genixer.training.trainers import TF32, GradientCheckpointing, make_trainer
from tests.conftest import CONF

OPTIONS = ["cpu", "gpu", "deepspeed_zero2", "deepspeed_zero3"]
BASE = ["paths.root_dir=/tmp/x", "paths.output_dir=/tmp/x/out"]
HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def accepted(target: str) -> tuple[set[str], bool]:
    """Argument names ``target`` takes, and whether it takes any (``**kwargs``).
    ``make_trainer`` forwards its ``**kwargs`` to ``lightning.Trainer``: both count."""
    fn = get_method(target)
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    if fn is make_trainer:
        names |= set(inspect.signature(L.Trainer).parameters)
        return names, False
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def target_nodes(node, path="trainer"):
    """``(path, node)`` for every config dict with a ``_target_`` under ``node``."""
    if OmegaConf.is_dict(node):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            yield from target_nodes(value, f"{path}.{key}")
    elif OmegaConf.is_list(node):
        for i, value in enumerate(node):
            yield from target_nodes(value, f"{path}[{i}]")


def check_targets(trainer_cfg) -> list[str]:
    checked = []
    for path, node in target_nodes(trainer_cfg):
        names, var_kw = accepted(node._target_)
        given = set(node) - HYDRA_KEYS
        unknown = sorted(given - names) if not var_kw else []
        assert not unknown, f"{path}: {node._target_} takes no {unknown}"
        checked.append(node._target_)
    return checked


@pytest.mark.parametrize("option", OPTIONS)
def test_trainer_option_composes_and_targets_fit(compose_cfg, option):
    cfg = compose_cfg([*BASE, f"trainer={option}"]).trainer
    targets = check_targets(cfg)
    assert targets[0] in ("lightning.Trainer", "genixer.training.trainers.make_trainer")
    assert cfg.precision in typing.get_args(_PRECISION_INPUT_STR)
    assert isinstance(cfg.devices, int) and isinstance(cfg.num_nodes, int)
    if option != "cpu":
        assert cfg.accelerator == "gpu" and cfg.precision == "bf16-mixed"
        assert cfg.tf32 is True and cfg.gradient_checkpointing is True
    if option.startswith("deepspeed"):
        assert cfg.strategy._target_ == "lightning.pytorch.strategies.DeepSpeedStrategy"
        assert cfg.strategy.stage == int(option[-1])


PAPER = sorted(p.stem for p in (Path(CONF) / "experiment").glob("paper_*.yaml"))


@pytest.mark.parametrize("experiment", PAPER)
def test_paper_recipes_use_a_valid_gpu_trainer(compose_cfg, experiment):
    cfg = compose_cfg([*BASE, f"experiment={experiment}"]).trainer
    check_targets(cfg)
    assert cfg.accelerator == "gpu" and cfg.precision == "bf16-mixed"


def test_multi_node_overrides_and_paper_generator(compose_cfg):
    cfg = compose_cfg(
        [
            *BASE,
            "trainer=deepspeed_zero3",
            "trainer.devices=8",
            "trainer.num_nodes=4",
            "trainer.accumulate_grad_batches=2",
            "trainer.strategy.offload_optimizer=true",
            "generator=llava",
        ]
    )
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (8, 4)
    check_targets(cfg.trainer)
    with pytest.raises(Exception, match="no_such_arg"):
        bad = compose_cfg([*BASE, "trainer=deepspeed_zero2", "+trainer.strategy.no_such_arg=1"])
        check_targets(bad.trainer)


def test_deepspeed_strategy_builds_where_deepspeed_imports(compose_cfg):
    pytest.importorskip("deepspeed")
    for stage in (2, 3):
        cfg = compose_cfg([*BASE, f"trainer=deepspeed_zero{stage}"]).trainer
        strategy = instantiate(cfg.strategy)
        assert strategy.config["zero_optimization"]["stage"] == stage


def test_gpu_trainer_builds_on_cpu_with_its_callbacks(compose_cfg, tmp_path):
    cfg = compose_cfg(
        [*BASE, "trainer=gpu", "trainer.accelerator=cpu", "trainer.precision=32-true"]
    ).trainer
    probe = L.Callback()
    trainer = instantiate(cfg, max_steps=1, default_root_dir=str(tmp_path), callbacks=[probe])
    kinds = [type(c) for c in trainer.callbacks]
    assert probe in trainer.callbacks  # the caller's callbacks are kept (fit passes its own)
    assert TF32 in kinds and GradientCheckpointing in kinds
    assert trainer.gradient_clip_val == 1.0


def test_predict_loop_override_of_the_deepspeed_strategy(compose_cfg):
    # genixer.training.predict builds its trainer from trainer_cfg with strategy="auto"
    # (generation needs a whole model per process): the DeepSpeed node must give way.
    cfg = compose_cfg(
        [*BASE, "trainer=deepspeed_zero3", "trainer.accelerator=cpu", "trainer.precision=32-true"]
    ).trainer
    trainer = build(cfg, strategy="auto", callbacks=[], logger=False)
    assert type(trainer.strategy).__name__ == "SingleDeviceStrategy"


class _Tiny(L.LightningModule):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.checkpointing_seen: list[bool] = []

    def training_step(self, batch, batch_idx):
        self.checkpointing_seen.append(self.model.is_activation_checkpointing)
        return self.model(**batch).loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)  # lr 0: only gradients matter


def _tiny_vlm_batch():
    from genixer.models import build_tokenizer, build_vlm, processor_for
    from tests.test_models import CORPUS, SPEC, _image

    tok = build_tokenizer(CORPUS, vocab_size=400)
    torch.manual_seed(0)
    model = build_vlm(SPEC, tok)
    proc = processor_for(model, tok, max_length=128)
    enc = [proc.encode(_image(c), [("What is this?", f"A {c} square.")]) for c in ("red", "blue")]
    return model, proc.collate(enc)


def _grads(model, batch, **flags):
    module = _Tiny(model)
    trainer = make_trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **flags,
    )
    model.zero_grad(set_to_none=True)
    trainer.fit(module, DataLoader([batch], batch_size=None))
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return module.checkpointing_seen, grads


def test_gradient_checkpointing_on_in_training_off_after_same_gradients():
    model, batch = _tiny_vlm_batch()
    before = torch.get_float32_matmul_precision()
    try:
        seen, with_gc = _grads(model, batch, gradient_checkpointing=True, tf32=True)
        assert seen == [True] and not model.is_activation_checkpointing
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True  # torch's default
    seen, plain = _grads(model, batch)
    assert seen == [False]
    assert with_gc.keys() == plain.keys() and with_gc
    for name, g in plain.items():
        assert torch.allclose(with_gc[name], g, atol=1e-6), name
