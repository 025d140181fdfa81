"""Sweeps: the stage cache's keys and interrupted stages, the experiments' grids, a real
multirun (one MLflow parent, a child per job, a crashed job recorded and passed over) and the
report made from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import tiny_overrides

BASE = ["paths.root_dir=/tmp/x", "paths.output_dir=/tmp/x/out"]


# ----------------------------------------------------------------- the stage cache
def test_an_interrupted_stage_is_not_taken_as_complete(tmp_path):
    from genixer.pipeline.cache import MANIFEST, StageCache

    cache = StageCache(tmp_path)
    calls = []

    def crash(folder: Path) -> dict:
        calls.append("crash")
        (folder / "half.txt").write_text("half written")
        raise RuntimeError("killed mid-stage")

    with pytest.raises(RuntimeError):
        cache.run("train", 1, {"lr": 1}, {}, crash)
    folder = next((tmp_path / "train").iterdir())
    assert not (folder / MANIFEST).exists()

    def finish(folder: Path) -> dict:
        calls.append("finish")
        assert (folder / "half.txt").exists()  # the same folder is handed back (resume)
        return {"n": 3}

    res = cache.run("train", 1, {"lr": 1}, {}, finish)
    assert (res.status, res.info, res.path) == ("ran", {"n": 3}, folder)
    again = cache.run("train", 1, {"lr": 1}, {}, crash)
    assert again.status == "reused" and again.info == {"n": 3}
    assert calls == ["crash", "finish"]

    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["complete"] is True and manifest["config"] == {"lr": 1}
    assert {"code_version", "inputs", "seconds", "info"} <= set(manifest)
    # a manifest that does not say complete, or cannot be read, does not count
    for text in [json.dumps(manifest | {"complete": False}), '{"complete": tr']:
        (folder / MANIFEST).write_text(text)
        assert cache.run("train", 1, {"lr": 1}, {}, finish).status == "ran"


def test_a_stage_another_process_is_computing_is_waited_for_then_reused(tmp_path):
    """Two sweeps on one cache: the second asker of a stage waits for the first, then re-uses
    its result (flock locks are per open file, so two threads stand for two processes)."""
    import threading

    from genixer.pipeline.cache import StageCache

    started, release, results = threading.Event(), threading.Event(), {}

    def slow(folder: Path) -> dict:
        started.set()
        release.wait(10)
        return {"by": "first"}

    def never(folder: Path) -> dict:
        raise AssertionError("the stage was computed twice")

    first = threading.Thread(
        target=lambda: results.setdefault("a", StageCache(tmp_path).run("s", 1, {}, {}, slow))
    )
    first.start()
    assert started.wait(10)
    second = threading.Thread(
        target=lambda: results.setdefault("b", StageCache(tmp_path).run("s", 1, {}, {}, never))
    )
    second.start()
    second.join(0.3)
    assert second.is_alive()  # waiting on the lock
    release.set()
    first.join(10)
    second.join(10)
    assert (results["a"].status, results["b"].status) == ("ran", "reused")
    assert results["b"].info == {"by": "first"}


def test_the_key_follows_values_not_spelling(tmp_path):
    from genixer.pipeline.cache import StageCache

    key = StageCache(tmp_path).key
    cfg = OmegaConf.create({"x": 1, "y": 1, "train": {"lr": "${x}", "steps": 5}})
    plain = {"train": {"steps": 5, "lr": 1}}  # same values, other order, no interpolation
    assert key("s", 1, {"train": cfg.train}, {}) == key("s", 1, plain, {})
    cfg.x = 2  # the interpolated value changes: so does the key
    assert key("s", 1, {"train": cfg.train}, {}) != key("s", 1, plain, {})
    assert key("s", 1, plain, {"up": "a"}) != key("s", 1, plain, {"up": "b"})
    assert key("s", 1, plain, {}) != key("s", 2, plain, {})  # STAGE_VERSIONS bump


def test_tau_all_sets_every_tasks_tau_and_keys_on_the_effective_value(compose_cfg):
    from genixer.config.schema import check_config
    from genixer.pipeline.runner import make_context
    from genixer.pipeline.stages.collect import Collect, effective_tau
    from genixer.pipeline.stages.pairs import Pairs

    def keys(cfg) -> tuple[dict, dict]:  # the collect and pairs stages' keys
        ctx = make_context(cfg)
        return Collect().key(ctx), Pairs().key(ctx)

    base = compose_cfg(BASE)
    coll = base.generator.collection
    assert effective_tau(coll) == {"common": 0.2, "adv": 0.2, "mcvqa": 0.5, "md": 0.2}
    swept_cfg = compose_cfg([*BASE, "generator.collection.tau_all=0.5"])
    swept = swept_cfg.generator.collection
    assert effective_tau(swept) == dict.fromkeys(coll.tasks, 0.5)
    spelt = compose_cfg([*BASE, "generator.collection.tau={common:0.5,adv:0.5,mcvqa:0.5,md:0.5}"])
    (collect_base, pairs_base), (collect_swept, pairs_swept) = keys(base), keys(swept_cfg)
    collect_spelt, pairs_spelt = keys(spelt)
    assert pairs_spelt == pairs_swept != pairs_base
    # tau_all, the ablation's knob, picks instruction levels only: the collect stage (and so
    # the tokenizer and the base model) stays; a per-task tau dict is the collection itself
    assert collect_swept == collect_base != collect_spelt
    with pytest.raises(ValueError, match="tau_all"):
        check_config(compose_cfg([*BASE, "generator.collection.tau_all=2"]))


def test_plain_conversations_ask_each_kind_the_scene_allows_once():
    import random
    from collections import Counter

    from genixer.pipeline.stages.collect import plain_rows
    from genixer.world.base import WorldImage
    from genixer.world.questions import plain_conversation
    from genixer.world.scene import Obj, Scene

    objs = [Obj("circle", "red", c, (0, 0, 1, 1)) for c in (0, 4, 8)]
    scene = Scene(48, 48, 3, objs)
    plain = plain_conversation(scene, random.Random(0))
    kinds = Counter(t.kind for t in plain)
    assert kinds["object_at"] == 1 and set(kinds.values()) == {1}
    assert plain_conversation(scene, random.Random(0)) == plain  # seeded
    images = [WorldImage(f"i{n}", "collection", f"i{n}.png", scene) for n in range(3)]
    rows = plain_rows(images, 0, "plain")
    assert [len(r["turns"]) for r in rows] == [len(plain)] * 3
    assert all(Counter(r["kinds"]) == kinds for r in rows)


def test_rec_pairs_draw_every_expression_kind_each_naming_one_object():
    from genixer.pipeline.stages.collect import generator_pairs
    from genixer.tasks import get_task
    from genixer.world.base import WorldImage
    from genixer.world.referring import resolve
    from genixer.world.scene import Obj, Scene

    objs = [Obj("circle", "red", 0, (2, 2, 14, 14)), Obj("square", "blue", 4, (18, 18, 30, 30))]
    scene = Scene(48, 48, 3, objs)
    images = [WorldImage(f"i{n}", "collection", f"i{n}.png", scene) for n in range(60)]
    every, _ = generator_pairs(images, ["rec"], {"rec": 1.0}, {"rec": 0.0}, 0)
    assert len(every) == 60
    assert len({p["kinds"][0] for p in every}) == 5  # every kind
    rec = get_task("rec")
    for p in every:  # each expression names exactly one object
        expression = rec.parse(p["target"])[0].question[len("Where is ") : -len(" in the image?")]
        assert resolve(scene, expression) is not None


def test_select_fraction_keeps_nested_deterministic_subsets():
    from genixer.core.record import Record
    from genixer.filters.selection import select, subsample

    recs = [Record(f"r{i:02d}", "img", "img.png", "common", "common", [], "") for i in range(30)]
    third, two, whole = (subsample(recs, f) for f in (0.3333, 0.6667, 1.0))
    assert (len(third), len(two), len(whole)) == (10, 20, 30)
    assert {r.id for r in third} < {r.id for r in two} < {r.id for r in whole}
    assert subsample(list(reversed(recs)), 0.3333) == list(reversed(third))
    kept, info = select(recs, {r.id: i / 30 for i, r in enumerate(recs)}, None, 0.5, 0.5)
    assert (info["num_passed"], info["num_kept"]) == (15, 8)
    with pytest.raises(ValueError, match="select.fraction"):
        subsample(recs, 0.0)


# ----------------------------------------------------------------- the experiments
GRIDS = {
    "band_sweep": ("filter.band", [[0, 0.5], [0.5, 0.7], [0.7, 1.0], None]),
    "threshold_sweep": ("filter.threshold", [0, 0.5, 0.7]),
    "scale_sweep": ("select.fraction", [0.3333, 0.6667, 1.0]),
    "tau_sweep": ("generator.collection.tau_all", [0, 0.2, 0.5]),
    # the CLIP thresholds follow the tiny CLIP's measured cosine scale: -1 (keep every scored
    # crop) and three more, whatever they are now
    "clip_sweep": ("filter.threshold", [-1.0, ..., ..., ...]),
    "clip_margin_sweep": ("filter.threshold", [0.0, 0.05]),
}


def grid(cfg, extra: list[str] = ()) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of an experiment's params and extra overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + list(extra)
    overrides = OverridesParser.create().parse_overrides(params)
    return BasicSweeper.split_arguments(overrides, None)[0]


@pytest.mark.parametrize("name", list(GRIDS))
def test_each_experiment_expands_to_its_grid_with_three_seeds(compose_cfg, name):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    key, values = GRIDS[name]
    cfg = compose_cfg([*BASE, f"experiment={name}"])
    jobs = grid(cfg)
    assert len(jobs) == len(values) * 3
    parser = OverridesParser.create()
    seen = [{o.key_or_group: o.value() for o in parser.parse_overrides(job)} for job in jobs]
    swept = [s[key] for s in seen[::3]]  # the seeds vary fastest
    assert [v for v, want in zip(swept, values, strict=True) if want is not ...] == [
        v for v in values if v is not ...
    ]
    assert [s["downstream.seed"] for s in seen[:3]] == [0, 1, 2]
    job = compose_cfg([*BASE, f"experiment={name}", *jobs[0]])  # a job's config composes
    value = OmegaConf.select(job, key)
    assert (OmegaConf.to_container(value) if OmegaConf.is_config(value) else value) == values[0]
    if name.startswith("clip"):
        assert (job.generator.name, job.task.name, job.filter.name) == ("genixer_s", "rec", "clip")
        assert job.filter.margin.enabled == (name == "clip_margin_sweep")
    assert len(grid(cfg, ["downstream.seed=0"])) == len(values)  # the command line narrows it


def test_the_judge_quality_sweep_crosses_five_judges_two_selections_three_seeds(compose_cfg):
    """The oracle at AUROC 1.0, 0.9 and 0.8, the trained judge, no filter; with and without
    stratified selection; 3 seeds: 30 jobs, each of which composes and passes the check."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from genixer.config.schema import check_config

    cfg = compose_cfg([*BASE, "experiment=judge_quality_sweep"])
    jobs = grid(cfg)
    assert len(jobs) == 30
    parser = OverridesParser.create()
    judges = []
    for job in jobs[::6]:  # stratify x seed vary fastest
        composed = compose_cfg([*BASE, "experiment=judge_quality_sweep", *job])
        check_config(composed)
        judges.append((composed.filter.name, composed.filter.get("target_auroc")))
    assert judges == [  # the trained judge first: its runs are the quickstart's
        ("fuyu", None),
        ("none", None),
        ("oracle", 1.0),
        ("oracle", 0.9),
        ("oracle", 0.8),
    ]
    values = {o.key_or_group: o.value() for o in parser.parse_overrides(jobs[3])}
    assert values["select.stratify"] == "kind" and values["downstream.seed"] == 0


# ----------------------------------------------------------------- the report
def test_report_groups_by_setting_without_the_seed():
    from genixer.runs.report import markdown
    from genixer.runs.sweep_jobs import Job, group

    def job(i, band, seed, acc, status="FINISHED"):
        metrics = {"downstream.accuracy": acc, "wall_seconds": 10.0} if acc is not None else {}
        metrics |= {
            "stages.generate.reused": float(i > 0),
            "stages.generate.seconds": 8.0 * (i == 0),
        }
        ov = {"experiment": "band_sweep", "filter.band": band, "downstream.seed": seed}
        return Job(
            f"r{i}", f"job{i}", status, ov, metrics, "ValueError: x" if acc is None else None
        )

    jobs = [
        job(0, "[0,0.5]", "0", 0.4),
        job(1, "[0,0.5]", "1", 0.5),
        job(2, "null", "0", 0.7),
        job(3, "null", "1", None, "FAILED"),
    ]
    settings, varying = group(jobs)
    assert varying == ["filter.band"]
    assert [s.label for s in settings] == ["filter.band=[0,0.5]", "filter.band=null"]
    text = markdown("t", "p", "sqlite://", settings, jobs)
    assert "| filter.band=[0,0.5] | 2 | 0.450 ± 0.071 | 10.0 ± 0.0 |" in text
    assert "| filter.band=null | 1 (+1 failed) | 0.700 | 10.0 |" in text
    assert "FAILED: ValueError: x" in text
    assert "Pipeline time of the finished jobs: 30 s" in text and "46 s, 1.5x" in text
    measured = markdown("t", "p", "sqlite://", settings, jobs, empty_cache_seconds=25.0)
    assert "took 25 s; 3 such jobs: 75 s, 2.5x the sweep's 30 s." in measured


# ----------------------------------------------------------------- a real multirun
def run_multirun(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    overrides = [o for o in tiny_overrides(tmp, "none") if not o.startswith("paths.output_dir")]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "genixer.run",
            "-m",
            *overrides,
            "generator.vision_pretrain=null",
            "world.splits.pool=4",
            f"hydra.sweep.dir={tmp}/sweep",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"GENIXER_ROOT": str(tmp)},
    )


def sweep_runs(tmp: Path):
    from mlflow import MlflowClient

    from genixer.runs.tracking import PARENT_RUN_TAG, SWEEP_ID_TAG

    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps)
    parents = [r for r in runs if SWEEP_ID_TAG in r.data.tags]
    children = sorted(
        (r for r in runs if PARENT_RUN_TAG in r.data.tags), key=lambda r: r.info.run_name
    )
    return client, parents, children


def test_a_2_job_multirun_one_parent_two_children_a_crash_recorded_and_the_report(tmp_path):
    """Two downstream seeds, the first a crash in the downstream training: its run ends
    FAILED and the sweep goes on; the second seed re-uses every upstream stage the first
    one made; the sweep exits 1 and writes the report. (A seed of the wrong type would be
    refused by the config check before any run is tracked; -30 is a valid int that training
    refuses: its phases seed Lightning with -30 + 20, out of numpy's bounds.)"""
    proc = run_multirun(tmp_path, "downstream.seed=-30,1")
    assert proc.returncode != 0, "a failed job must make the sweep's exit status non-zero"
    assert "1 job(s) of the sweep" in proc.stderr, proc.stderr[-3000:]
    assert "-10 is not in bounds" in proc.stderr, proc.stderr[-3000:]

    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert [c.info.status for c in children] == ["FAILED", "FINISHED"]
    assert "ValueError: -10 is not in bounds" in children[0].data.tags["genixer.error"]
    assert (tmp_path / "sweep" / "0" / "error.txt").exists()
    done = children[1]
    assert done.data.params["override.downstream.seed"] == "1"
    assert done.data.params["downstream.seed"] == "1"  # the resolved config
    assert done.data.params["generator.vision_pretrain"] == "None"
    assert {"downstream.accuracy", "select.num_kept", "stages.generate.reused"} <= set(
        done.data.metrics
    )
    assert parent.info.status == "FAILED" and parent.data.tags["genixer.failed_jobs"] == "1"
    assert "sweep.grid" not in parent.data.params  # no sweeper params: the command line's
    assert "downstream.seed=-30,1" in parent.data.params["sweep.overrides"]

    # the second seed re-used everything upstream of the downstream training, although the
    # first job crashed: the stages it finished are complete, the one it crashed in is not
    summary = json.loads((tmp_path / "sweep" / "1" / "summary.json").read_text())
    ran = {k for k, v in summary["stages"].items() if v["status"] == "ran"}
    assert ran == {"downstream_baseline", "downstream_synthetic"}
    assert summary["stages"]["generate"]["status"] == "reused"

    # the report: in the sweep folder and the parent's artifacts
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "| all jobs | 1 (+1 failed) |" in report
    assert "| job0 | all jobs | downstream.seed=-30 | FAILED: ValueError" in report
    # each finished job's record viewer: linked from the report, an artifact of its run
    assert "| [records](1/viewer/index.html) |" in report
    assert (tmp_path / "sweep" / "1" / "viewer" / "index.html").is_file()
    viewer = {a.path for a in client.list_artifacts(done.info.run_id, "viewer")}
    assert {"viewer/index.html", "viewer/data", "viewer/images"} <= viewer
    assert (tmp_path / "sweep" / "report.png").read_bytes()[:4] == b"\x89PNG"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert artifacts == {"report/report.md", "report/report.png", "report/report.json"}

    # the command, by sweep folder and by parent run id
    from genixer.runs.report import main

    assert main([str(tmp_path / "sweep"), "--out", str(tmp_path / "r1"), "--no-log"]) == 0
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [parent.info.run_id, "--tracking-uri", uri, "--out", str(tmp_path / "r2"), "--no-log"]
    assert main(args) == 0
    assert (tmp_path / "r1" / "report.md").read_text() == (
        tmp_path / "r2" / "report.md"
    ).read_text()
    with pytest.raises(SystemExit, match="not a sweep folder"):
        main(["no-such-run", "--tracking-uri", uri, "--no-log"])
    data = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert (data["settings"][0]["finished"], data["settings"][0]["failed"]) == (1, 1)
    assert len(data["settings"][0]["metrics"]["downstream.accuracy"]["values"]) == 1


@pytest.mark.slow
def test_band_sweep_runs_upstream_once(tmp_path):
    """The band sweep itself, shrunk to two seeds: generator, generation, judge and scores
    run in the first job only; every band gets its report row, mean ± std over both seeds."""
    proc = run_multirun(
        tmp_path,
        "experiment=band_sweep",
        "filter=fuyu",
        "filter.train.steps=2",
        "filter.train.batch_size=8",
        "filter.train.items_per_image=2",
        "filter.model.spec.hidden=32",
        "filter.model.spec.layers=1",
        "filter.model.spec.heads=2",
        "filter.model.spec.intermediate=64",
        "downstream.seed=0,1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 8
    assert parents[0].info.status == "FINISHED"
    for i in range(8):
        s = json.loads((tmp_path / "sweep" / str(i) / "summary.json").read_text())["stages"]
        for stage in ("train_generator", "generate", "train_judge", "score"):
            assert s[stage]["status"] == ("ran" if i == 0 else "reused"), (i, stage)
        assert s["select"]["status"] == ("ran" if i % 2 == 0 else "reused"), i
    report = (tmp_path / "sweep" / "report.md").read_text()
    for band in ("[0,0.5]", "[0.5,0.7]", "[0.7,1.0]", "null"):
        assert f"| filter.band={band} | 2 |" in report


def test_the_report_plots_the_gain_against_the_judges_auroc(tmp_path):
    from genixer.runs.report_auroc import plot_gain_against_auroc
    from genixer.runs.sweep_jobs import Job, Setting

    def setting(label: str, auroc: float | None, gains: list[float]) -> Setting:
        jobs = [
            Job(
                f"r{i}",
                f"job{i}",
                "FINISHED",
                {},
                {"downstream.gain": g} | ({"filter.auroc": auroc} if auroc is not None else {}),
            )
            for i, g in enumerate(gains)
        ]
        return Setting(label, [label], jobs)

    one = [setting("oracle_100", 1.0, [0.05, 0.07]), setting("none", None, [0.1, 0.12])]
    assert plot_gain_against_auroc(one, tmp_path / "a.png") is None  # one AUROC: nothing to plot
    three = [*one, setting("oracle_080", 0.8, [0.0, 0.02]), setting("fuyu", 0.71, [0.01])]
    path = plot_gain_against_auroc(three, tmp_path / "b.png")
    assert path == tmp_path / "b.png" and path.stat().st_size > 5000
