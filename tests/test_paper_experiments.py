"""The paper's recipes (``experiment=paper_*``) compose, hold GENIXER.md's hyperparameters, and
every ``_target_`` they name accepts the arguments given, all without building a 7B model."""

from __future__ import annotations

import inspect
import math

import lightning as L
import pytest
from hydra.utils import get_method
from omegaconf import OmegaConf

from genixer.sources.collection import _entries
from genixer.training.trainers import make_trainer

PAPER = ["paper_genixer_l", "paper_genixer_s", "paper_llava_915k", "paper_shikra_350k"]
BASE = ["paths.root_dir=/tmp/x", "paths.output_dir=/tmp/x/out"]
REQUIRED = {
    f"paper.{k}" for k in ("data_root", "pool_images", "generator_checkpoint", "filter_checkpoint")
}
HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
# What build_vlm reads from a spec (genixer/models/vlm.py).
SPEC_KEYS = {
    "image_size",
    "patch_size",
    "vision_hidden",
    "vision_layers",
    "vision_heads",
    "vision_intermediate",
    "text_hidden",
    "text_layers",
    "text_heads",
    "text_intermediate",
    "max_position_embeddings",
    "projector_type",
}


def missing_keys(cfg, prefix="") -> set[str]:
    out = set()
    for key in cfg:
        path = f"{prefix}{key}"
        if key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            out.add(path)
        elif OmegaConf.is_dict(cfg._get_node(key)):
            out |= missing_keys(cfg._get_node(key), f"{path}.")
    return out


def target_nodes(node, path=""):
    if OmegaConf.is_dict(node):
        if "_target_" in node:
            yield path, node
        for key in node:
            if key != "hydra" and not OmegaConf.is_missing(node, key):
                yield from target_nodes(node._get_node(key), f"{path}.{key}".strip("."))
    elif OmegaConf.is_list(node):
        for i in range(len(node)):
            yield from target_nodes(node._get_node(i), f"{path}[{i}]")


def accepted(target: str) -> tuple[set[str], bool]:
    fn = get_method(target)
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    if fn is make_trainer:  # forwards its **kwargs to lightning.Trainer
        return names | set(inspect.signature(L.Trainer).parameters), False
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def llava_params(s) -> float:
    """Parameters of a LLaVA-architecture spec (32000-token vocabulary), by arithmetic."""
    h, v = s.text_hidden, s.vision_hidden
    lm = 2 * 32000 * h + s.text_layers * (4 * h * h + 3 * h * s.text_intermediate)
    tower = s.vision_layers * (4 * v * v + 2 * v * s.vision_intermediate)
    tower += (s.image_size // s.patch_size) ** 2 * v + 3 * s.patch_size**2 * v
    proj = v * h + (h * h if s.projector_type == "mlp2x_gelu" else 0)
    return lm + tower + proj


@pytest.fixture(scope="module")
def paper_cfgs() -> dict:
    """Each paper experiment composed once (composing is the slow part)."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return {
            n: compose("config", overrides=[*BASE, f"experiment={n}"], return_hydra_config=True)
            for n in PAPER
        }


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_composes_and_every_target_takes_its_arguments(paper_cfgs, name):
    cfg = paper_cfgs[name]
    # the local paths are the only values left to give
    own = {"paper.downstream_checkpoint"} if name == "paper_shikra_350k" else set()
    assert missing_keys(cfg) == REQUIRED | own
    checked = []
    for path, node in target_nodes(cfg):
        names, var_kw = accepted(node._target_)
        unknown = sorted(set(node) - HYDRA_KEYS - names)
        assert var_kw or not unknown, f"{path}: {node._target_} takes no {unknown}"
        checked.append(path)
    assert {"world", "world.base", "generator.model", "trainer", "trainer.strategy"} <= set(checked)
    # the collection's datasets: every converter accepts its arguments (no file is read)
    datasets = OmegaConf.to_container(cfg.world.base.datasets, resolve=True)
    tasks = list(cfg.generator.collection.tasks)
    read = {e["task"] for e in _entries(datasets) if e["ratio"] > 0 and e["task"] in tasks}
    assert read == set(tasks)
    # the 7B architecture, checked by arithmetic
    spec = cfg.generator.model.spec
    assert set(spec) >= SPEC_KEYS and spec.vision_pos_init_std is None
    assert 6.5e9 < llava_params(spec) < 7.5e9
    assert (spec.image_size // spec.patch_size) ** 2 == (
        576 if cfg.generator.name == "genixer_l" else 256
    )
    assert cfg.trainer.strategy.stage == 3 and cfg.trainer.precision == "bf16-mixed"
    # the downstream recipes run the whole loop: the arms and the benchmarks too
    assert cfg.stop_after == (
        None if name in ("paper_llava_915k", "paper_shikra_350k") else "export"
    )


def test_paper_paths_reach_their_places(compose_cfg):
    paths = [f"{k}=/given/{k}" for k in REQUIRED]
    given = compose_cfg([*BASE, "experiment=paper_llava_915k", *paths])
    assert given.generator.checkpoint == "/given/paper.generator_checkpoint"
    assert given.filter.checkpoint == "/given/paper.filter_checkpoint"
    assert given.world.base.root == "/given/paper.data_root"
    assert given.world.images == "/given/paper.pool_images"


def test_paper_recipes_hold_genixer_md_values(paper_cfgs):
    gl = paper_cfgs["paper_genixer_l"]
    t = gl.generator.gen_train
    assert (t.lr, t.warmup_ratio, t.batch_size * gl.trainer.devices) == (1e-5, 0.03, 128)
    assert t.steps == math.ceil((583_000 + 20_000 + 17_000 + 108_000) / 128)  # 1 epoch
    assert (
        gl.generator.temperature == 0.2 and gl.generator.model.spec.projector_type == "mlp2x_gelu"
    )
    assert dict(gl.generator.collection.tau)["common"] == 0.2
    assert dict(gl.generator.collection.tau)["mcvqa"] == 0.5
    assert gl.filter.name == "fuyu" and gl.filter.threshold == 0.7 and gl.task.name == "generic"

    gs = paper_cfgs["paper_genixer_s"]
    t = gs.generator.gen_train
    assert (t.lr, t.batch_size * gs.trainer.devices) == (3e-5, 128)
    assert t.steps == math.ceil(5 * (1_000_000 * 2 + 218_000 + 4_000 + 1_800) / 128)  # 5 epochs
    assert gs.generator.temperature == 0.0 and gs.generator.model.spec.projector_type == "linear"
    assert (gs.filter.name, gs.filter.min_crop_px, gs.task.name) == ("clip", 50, "rec")

    lv = paper_cfgs["paper_llava_915k"]
    (pre,) = lv.downstream.pretrain
    assert (pre.lr, pre.trainable, pre.batch_size * lv.trainer.devices) == (1e-3, "projector", 256)
    assert pre.steps == math.ceil(915_000 / 256)
    assert lv.downstream.finetune.lr == 2e-5
    assert lv.downstream.finetune.steps == math.ceil((665_000 + 8_000) / 128)
    assert lv.generator.gen_train == gl.generator.gen_train  # built on Genixer_L's recipe

    sh = paper_cfgs["paper_shikra_350k"]
    assert sh.downstream.eval.metric == "rec" and sh.generator.name == "genixer_s"
    # one command per table row: the two arms' data and every benchmark of the table
    data = OmegaConf.to_container(lv.downstream, resolve=False)
    assert [e.get("export") for e in data["pretrain_data"]] == [True, None]
    assert data["pretrain_data"][1]["arm"] == "baseline"  # LLaVA-1.5's own stage 1: LCS-558K
    assert data["finetune_data"][1] == {"export": True, "count": 8000}
    assert data["checkpoint"] == "${paper.generator_checkpoint}" and data["fresh_projector"]
    names = [b["benchmark"] for b in data["benchmarks"]]
    assert names == ["vqav2", "gqa", "vizwiz", "scienceqa", "textvqa", "pope", "mmbench", "seed"]
    rec = OmegaConf.to_container(sh.downstream.benchmarks, resolve=False)
    assert {b["benchmark"] for b in rec} == {"rec"} and len(rec) == 8
    own = OmegaConf.to_container(sh.downstream, resolve=False)
    assert not own["fresh_projector"] and own["finetune_data"] == []
