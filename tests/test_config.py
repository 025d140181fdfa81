"""Every shipped config composes, its targets resolve, and bad overrides fail loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import get_method
from omegaconf import OmegaConf

from tests.conftest import CONF

GROUPS = ["world", "generator", "task", "filter", "downstream", "trainer", "logger", "paths"]
BASE = ["paths.root_dir=/tmp/x", "paths.output_dir=/tmp/x/out"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


def targets(node, found=None):
    found = [] if found is None else found
    if OmegaConf.is_config(node) and node._is_none():
        return found
    if OmegaConf.is_dict(node):
        for k, v in node.items_ex(resolve=False):
            if k == "hydra":
                continue
            if k == "_target_":
                found.append(v)
            else:
                targets(v, found)
    elif OmegaConf.is_list(node):
        for i in range(len(node)):
            targets(node._get_node(i), found)  # unresolved: paths may need paper.* values
    return found


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(compose_cfg, group, option):
    cfg = compose_cfg([*BASE, f"{group}={option}"])
    cfg_plain = OmegaConf.to_container(cfg, resolve=False)
    assert cfg_plain
    for t in targets(cfg):
        get_method(t)  # the target exists and is importable


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(compose_cfg, experiment):
    cfg = compose_cfg([*BASE, f"experiment={experiment}"])
    for t in targets(cfg):
        get_method(t)


@pytest.mark.parametrize("pair", options("generator_task"))
def test_generator_task_specialisation_is_picked_by_its_pair(compose_cfg, pair):
    generator, task = pair.split("_", 1)
    assert generator in options("generator") and task in options("task")
    cfg = compose_cfg([*BASE, f"generator={generator}", f"task={task}"])
    special = OmegaConf.load(Path(CONF) / "generator_task" / f"{pair}.yaml")
    # every value the file sets is the composed one (it is applied, and nothing later wins)
    for key, value in OmegaConf.to_container(special).items():
        assert OmegaConf.to_container(cfg[key], resolve=True) | value == OmegaConf.to_container(
            cfg[key], resolve=True
        )


def test_question_temperature_is_off_for_fixed_format_tasks(compose_cfg):
    assert compose_cfg(BASE).generate.question_temperature == 1.0  # generic: kinds sampled
    for task in ("adv", "mcvqa", "md"):
        assert compose_cfg([*BASE, f"task={task}"]).generate.question_temperature is None
    assert compose_cfg([*BASE, "task=common"]).generate.question_temperature == 1.0


def test_defaults_are_the_quickstart(compose_cfg):
    cfg = compose_cfg(BASE)
    assert cfg.generator.name == "genixer_l"
    assert cfg.task.name == "generic"
    assert cfg.filter.name == "fuyu"
    assert cfg.generate.temperature == 0.2
    assert cfg.generator.model.spec.projector_type == "mlp2x_gelu"


def test_world_and_trainer_instantiate(compose_cfg, tmp_path):
    from genixer.core.build import build

    cfg = compose_cfg(BASE)
    world = build(cfg.world)
    assert world.split_sizes["pool"] == cfg.world.splits.pool
    trainer = build(cfg.trainer, max_steps=1, default_root_dir=str(tmp_path))
    assert trainer.max_steps == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("generator=nope", "Could not find 'generator/nope'"),
        ("world.seedd=1", "seedd"),
        # a required value is the config check's to name (genixer.config.schema), before Hydra
        ("world.seed=???", "world.seed: is required"),
    ],
)
def test_bad_overrides_fail_naming_what_is_wrong(override, message):
    proc = subprocess.run(
        [sys.executable, "-m", "genixer.run", override, "paths.root_dir=/tmp/x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert message in proc.stderr


def test_experiments_override_globally_and_start_with_their_command(compose_cfg):
    for name in options("experiment"):
        lines = (Path(CONF) / "experiment" / f"{name}.yaml").read_text().splitlines()
        assert lines[0] == "# @package _global_"
        assert lines[1].startswith("# python -m genixer.run") and f"experiment={name}" in lines[1]
    cfg = compose_cfg([*BASE, "experiment=medium_band"])
    assert list(cfg.filter.band) == [0.5, 0.7]
