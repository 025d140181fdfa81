"""The schema every composed config is checked against: every shipped config passes, and a
bad value fails before any stage runs, with a message that names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from genixer.config.check import ConfigError
from genixer.config.schema import check_config
from tests.conftest import CONF, tiny_overrides

GROUPS = ("world", "generator", "task", "filter", "downstream", "trainer", "logger")
PAPER = ("paper_genixer_l", "paper_genixer_s", "paper_llava_915k", "paper_shikra_350k")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


def required_paths(tmp: Path) -> list[str]:
    """Real folders for the values a config leaves required (the data, the checkpoints)."""
    for name in ("data", "pool", "gen_ckpt", "judge_ckpt", "ds_ckpt"):
        (tmp / name).mkdir(exist_ok=True)
    (tmp / "ds_ckpt" / "config.json").write_text("{}")
    (tmp / "gen_ckpt" / "config.json").write_text("{}")
    return [f"paths.root_dir={tmp}", f"paths.output_dir={tmp}/out"]


def paper_paths(tmp: Path) -> list[str]:
    return [
        f"paper.data_root={tmp}/data",
        f"paper.pool_images={tmp}/pool",
        f"paper.generator_checkpoint={tmp}/gen_ckpt",
        f"paper.filter_checkpoint={tmp}/judge_ckpt",
    ]


def stand_in_downstream_files(cfg) -> None:
    """Tiny stand-ins at every path the downstream entries name (a one-record LLaVA file,
    empty annotation files, image folders): the check reads only their first record."""
    import json

    record = {"id": "0", "image": "x.jpg", "conversations": [{"from": "human", "value": "q"}]}
    d = cfg.downstream
    for entry in [*d.pretrain_data, *d.finetune_data]:
        if entry.get("file"):
            Path(entry.file).parent.mkdir(parents=True, exist_ok=True)
            Path(entry.file).write_text(json.dumps([record]))
            Path(entry.images).mkdir(parents=True, exist_ok=True)
    for entry in d.benchmarks:
        for f in entry.get("annotations") or []:
            Path(f).parent.mkdir(parents=True, exist_ok=True)
            Path(f).touch()
        if entry.get("images"):
            Path(entry.images).mkdir(parents=True, exist_ok=True)


def group_overrides(group: str, option: str, tmp: Path) -> list[str]:
    """The override that picks ``option``, plus what that option leaves required."""
    picked = [f"{group}={option}"]
    if (group, option) == ("world", "folder"):
        picked.append(f"world.images={tmp}/pool")
    if (group, option) == ("world", "collection"):
        # a collection alone has no downstream / benchmark split: a run of it stops before
        # the downstream arms (or names file entries); reaching them is refused at once
        picked += [f"world.root={tmp}/data", "stop_after=train_generator"]
    if group == "task" and option not in ("generic", "common", "adv", "mcvqa", "md"):
        picked.insert(0, "generator=shikra")
    if group == "generator" and option == "shikra":
        picked.append("task=rec")
    if (group, option) in (("generator", "hf"), ("downstream", "hf"), ("filter", "vlm_judge")):
        picked.append(f"{group}.checkpoint={tmp}/ds_ckpt")  # the hf family's required folder
    return picked


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids="{0[0]}={0[1]}".format
)
def test_every_option_of_every_group_passes_the_check(compose_cfg, tmp_path, group, option):
    cfg = compose_cfg([*required_paths(tmp_path), *group_overrides(group, option, tmp_path)])
    checked = check_config(cfg)
    assert checked.seed == cfg.seed


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_passes_the_check(compose_cfg, tmp_path, experiment):
    extra = paper_paths(tmp_path) if experiment in PAPER else []
    if experiment.startswith("clip"):
        extra.append("task=rec")  # the CLIP sweeps run on Genixer_S's REC data
    if experiment == "paper_shikra_350k":
        extra.append(f"paper.downstream_checkpoint={tmp_path}/ds_ckpt")
    cfg = compose_cfg([*required_paths(tmp_path), f"experiment={experiment}", *extra])
    stand_in_downstream_files(cfg)
    check_config(cfg)


def test_the_tests_own_shrunk_config_passes(compose_cfg, tmp_path):
    for filter_name in ("fuyu", "clip", "none"):
        check_config(compose_cfg(tiny_overrides(tmp_path, filter_name)))


BAD = [
    # (overrides, the key the message must name, a word of the reason)
    (["+filter.explain_more=true"], "filter.explain_more", "unknown key"),
    (
        ["+generator.base_train.position_jitter=48"],
        "generator.base_train.position_jitter",
        "unknown",
    ),
    (["generate.per_image=four"], "generate.per_image", "must be int"),
    (["generator.base_train.lr=-0.1"], "generator.base_train.lr", "> 0"),
    (["generator.collection.tau_all=1.5"], "generator.collection.tau_all", "[0.0, 1.0]"),
    (["select.fraction=0"], "select.fraction", "(0, 1]"),
    (["export.formats=[llava,csv]"], "export.formats[1]", "must be one of"),
    (["export.formats=[hf]"], "export.formats", "must include llava"),
    (["filter.band=[0.7,0.5]"], "filter.band", "lo < hi"),
    (["filter.threshold=calibrated"], "filter.threshold", "no calibrated threshold"),
    (["filter=none", "filter.threshold=0.5"], "filter.threshold", "scores nothing"),
    (["stop_after=score"], "stop_after", "must be one of"),
    (["task=rec"], "task.name", "not one of the generator's tasks"),
    (["generate.backend=vllm"], "generate.question_temperature", "vllm"),
    (["generate.sampler=gpu"], "generate.sampler", "must be one of"),
    (
        ["generate.backend=vllm", "generate.question_temperature=null", "generate.sampler=device"],
        "generate.sampler",
        "vllm",
    ),
    (["world.max_objects=12"], "world.max_objects", "grid^2"),
    (["+trainer.max_epoch=1"], "trainer.max_epoch", "no such keyword"),
    (["downstream.pretrain=[{steps:1,batch_size:8,lr:1e-3}]"], "downstream.pretrain[0]", "missing"),
    (["generator.model.spec.text_heads=5"], "generator.model.spec.text_hidden", "divisible"),
    (["world=folder"], "world.images", "required"),
]


@pytest.mark.parametrize(("overrides", "key", "reason"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_value_is_refused_naming_its_key(compose_cfg, tmp_path, overrides, key, reason):
    cfg = compose_cfg([*required_paths(tmp_path), *overrides])
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert str(err.value).startswith(key), str(err.value)
    assert reason in str(err.value)


def test_clip_combinations_are_refused_before_training(compose_cfg, tmp_path):
    base = [*required_paths(tmp_path), "generator=shikra", "task=rec", "filter=clip"]
    calibrated_margin = compose_cfg(
        [*base, "filter.threshold=calibrated", "filter.margin.enabled=true"]
    )
    with pytest.raises(ConfigError, match=r"^filter\.threshold: calibrated is a similarity"):
        check_config(calibrated_margin)
    checkpoint = compose_cfg(
        [*base, "filter.threshold=calibrated", f"filter.checkpoint={tmp_path}"]
    )
    with pytest.raises(ConfigError, match="a checkpoint has no calibration"):
        check_config(checkpoint)


def test_a_missing_data_folder_is_refused_naming_the_key(compose_cfg, tmp_path):
    cfg = compose_cfg(
        [*required_paths(tmp_path), "world=collection", f"world.root={tmp_path}/nope"]
    )
    with pytest.raises(ConfigError, match=r"^world\.root: no data folder"):
        check_config(cfg)
    cfg = compose_cfg([*required_paths(tmp_path), f"generate.decontaminate={tmp_path}/nope"])
    with pytest.raises(ConfigError, match=r"^generate\.decontaminate\[0\]"):
        check_config(cfg)


def test_the_cli_refuses_a_bad_config_before_any_stage(tmp_path):
    """The entry point checks right after composition: no stage folder is made."""
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "genixer.run",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}/run",
            "logger=none",
            "+generator.collection.plain_repeat={object_at:3}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "generator.collection.plain_repeat: unknown key" in out.stderr
    assert not (tmp_path / ".cache").exists()


@pytest.mark.parametrize("arm", options("judge_quality"))
def test_every_arm_of_the_judge_quality_sweep_passes_the_check(compose_cfg, tmp_path, arm):
    cfg = compose_cfg([*required_paths(tmp_path), "experiment=judge_quality_sweep"])
    assert "+judge_quality" in cfg.hydra.sweeper.params
    check_config(compose_cfg([*required_paths(tmp_path), f"+judge_quality={arm}"]))
