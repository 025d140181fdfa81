"""Sharded generation through Lightning's predict loop: the same bytes whatever the batch
size and the number of processes; exactly once after kill -9 at any moment; a merge that
refuses incomplete shards. Real Lightning (ddp_spawn over gloo for 2 CPU processes), a tiny
real model saved to disk."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from omegaconf import OmegaConf

from genixer.models import build_tokenizer, build_vlm, processor_for, save_tokenizer, save_vlm
from genixer.pipeline.stages import generate as G
from genixer.sources.shapes import ShapesWorld
from genixer.training.shards import IncompleteShardsError, ShardPlan, read_rows, shard_of
from tests.conftest import TINY_VLM_SPEC, tiny_judge, truth_records

SPEC = TINY_VLM_SPEC
CORPUS = [
    "Question: How many red circles are there? Answer: 2.",
    "Question: Is there a blue square? Answer: yes.",
    "Please provide a clear and direct question and answer after examining the image.",
] * 10
DECODING = {"temperature": 1.0, "max_new_tokens": 6, "top_p": None}  # a random model varies
SHARD = 3


def trainer_cfg(devices: int):
    return OmegaConf.create(
        {
            "_target_": "lightning.Trainer",
            "accelerator": "cpu",
            "devices": devices,
            "num_nodes": 1,
            "precision": "32-true",
            "logger": False,
            "enable_model_summary": False,
            "enable_progress_bar": False,
        }
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    pool = ShapesWorld(seed=2, image_size=32, splits={"pool": 6}).materialize(root / "world")
    tok = build_tokenizer(CORPUS, vocab_size=300)
    torch.manual_seed(0)
    model = build_vlm(SPEC, tok)
    save_vlm(model, root / "model")
    save_tokenizer(tok, root / "tokenizer")
    reqs = G.requests(pool["pool"], 2, "generic", "genixer_l", 0)
    (root / "requests.json").write_text(json.dumps(reqs))
    return {"root": root, "model": model, "proc": processor_for(model, tok), "reqs": reqs}


def generate_into(env, folder: Path, batch_size: int, devices: int = 1, reqs=None) -> dict:
    return G.run_generation(
        env["model"],
        env["proc"],
        reqs if reqs is not None else env["reqs"],
        world=env["root"] / "world",
        folder=folder,
        decoding=DECODING,
        batch_size=batch_size,
        shard_size=SHARD,
        trainer_cfg=trainer_cfg(devices),
        checkpoint=env["root"] / "model",
    )


@pytest.fixture(scope="module")
def reference(env):
    folder = env["root"] / "reference"
    generate_into(env, folder, batch_size=4)
    return (folder / G.GENERATIONS).read_bytes()


def test_lightning_teardown_puts_a_callers_model_back_where_it_was():
    """Lightning moves the predict module to the CPU at teardown; a caller's model returns to
    the device it came on instead (meta here: a move to the CPU would fail on it)."""
    from genixer.training.predict import _PredictModule

    model = torch.nn.Linear(4, 4, device="meta")
    module = _PredictModule(model, predictor=None)
    module.cpu()
    assert model.weight.device.type == "meta"
    loaded = _PredictModule(None, predictor=None, load_model=lambda: torch.nn.Linear(2, 2))
    loaded.configure_model()
    assert loaded.cpu().model.weight.device.type == "cpu"  # nothing to return to: Lightning's way


@pytest.mark.gpu
def test_a_cuda_model_stays_on_the_gpu_after_generation(env, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model = build_vlm(SPEC, env["proc"].tokenizer).cuda()
    cfg = trainer_cfg(1)
    cfg.accelerator = "gpu"
    info = G.run_generation(
        model,
        env["proc"],
        env["reqs"],
        world=env["root"] / "world",
        folder=tmp_path,
        decoding=DECODING,
        batch_size=4,
        shard_size=SHARD,
        trainer_cfg=cfg,
    )
    assert info["generated"] == len(env["reqs"])
    assert next(model.parameters()).device.type == "cuda"


# ------------------------------------------------------------------------------ shards
def test_shards_follow_ids_not_positions_and_split_ranks_exactly(tmp_path):
    ids = [f"r{i:03d}" for i in range(40)]
    plan = ShardPlan(ids, 7, tmp_path)
    again = ShardPlan(list(reversed(ids)), 7, tmp_path)
    assert plan.n_shards == 6 and plan.members == again.members
    assert all(shard_of(i, 6) == k for k, m in plan.members.items() for i in m)
    for world in (1, 2, 3):
        taken = [k for rank in range(world) for k in plan.shards_of_rank(rank, world)]
        assert sorted(taken) == list(range(plan.n_shards))


def test_merge_refuses_missing_duplicated_or_foreign_ids(tmp_path):
    ids = [f"r{i}" for i in range(10)]
    plan = ShardPlan(ids, 4, tmp_path)
    for k, members in plan.members.items():
        if members:
            plan.write_shard(k, [{"id": i, "v": i} for i in members])
    rows = plan.merge(tmp_path / "all.jsonl")
    assert [r["id"] for r in rows] == sorted(ids)
    assert [r["id"] for r in read_rows(tmp_path / "all.jsonl")] == sorted(ids)
    with pytest.raises(IncompleteShardsError):
        plan.write_shard(0, [{"id": "stranger"}])
    k = next(k for k, m in plan.members.items() if m)
    good = plan.path(k).read_text()
    first = good.splitlines(keepends=True)[0]
    for text in (good + first, good.replace(first, ""), good[:-5]):  # dup, missing, truncated
        plan.path(k).write_text(text)
        with pytest.raises((IncompleteShardsError, ValueError)):
            plan.merge(tmp_path / "again.jsonl")
        assert not plan.is_done(k) and not plan.path(k).exists()  # invalid: removed, redone
        plan.path(k).write_text(good)
    (plan.dir / ".shard-00000.jsonl.123.tmp").write_text('{"id": "half')
    assert plan.clean_temp_files() == 1 and plan.pending() == []


# -------------------------------------------------------------------------- determinism
def test_same_bytes_for_batch_sizes_1_4_16_and_two_processes(env, reference, tmp_path):
    for batch in (1, 16):
        info = generate_into(env, tmp_path / f"b{batch}", batch)
        assert info["processes"] == 1 and info["generated"] == len(env["reqs"])
        assert (tmp_path / f"b{batch}" / G.GENERATIONS).read_bytes() == reference
    info = generate_into(env, tmp_path / "ddp", batch_size=4, devices=2)
    assert info["processes"] == 2 and info["generated"] == len(env["reqs"])
    assert (tmp_path / "ddp" / G.GENERATIONS).read_bytes() == reference
    rows = [json.loads(line) for line in reference.decode().splitlines()]
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids) == sorted(r["id"] for r in env["reqs"])
    assert len({r["raw"] for r in rows}) > 1 and all(r["new_tokens"] > 0 for r in rows)


def test_a_rerun_keeps_valid_shards_and_redoes_missing_or_damaged_ones(env, reference, tmp_path):
    folder = tmp_path / "gen"
    first = generate_into(env, folder, batch_size=4)
    assert first["shards_resumed"] == 0
    plan = ShardPlan([r["id"] for r in env["reqs"]], SHARD, folder)
    done = [k for k, m in plan.members.items() if m]
    plan.path(done[0]).unlink()
    text = plan.path(done[1]).read_text()
    plan.path(done[1]).write_text(text[: len(text) // 2])  # a torn write (not ours: no rename)
    (folder / G.GENERATIONS).unlink()
    again = generate_into(env, folder, batch_size=2)
    assert again["shards_resumed"] == len(done) - 2
    assert again["generated"] == len(plan.members[done[0]]) + len(plan.members[done[1]])
    assert (folder / G.GENERATIONS).read_bytes() == reference


# ----------------------------------------------------------------------------- kill -9
CHILD = """
import json, sys
from pathlib import Path
root, folder = Path(sys.argv[1]), Path(sys.argv[2])
from genixer.models import load_tokenizer, load_vlm, processor_for
from genixer.pipeline.stages import generate as G
model = load_vlm(root / "model")
proc = processor_for(model, load_tokenizer(root / "tokenizer"))
reqs = json.loads((root / "requests.json").read_text())
print("ready", flush=True)
G.run_generation(
    model,
    proc,
    reqs,
    world=root / "world",
    folder=folder,
    decoding=json.loads(sys.argv[3]),
    batch_size=1,
    shard_size=3,
)
print("done", flush=True)
"""


def kill_at_random_moment(env, folder: Path, rng: random.Random) -> bool:
    """Start a generation process, SIGKILL it a random time after it is ready; True if it
    was still running when killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(env["root"]), str(folder), json.dumps(DECODING)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.5))
        killed = proc.poll() is None
        proc.kill()  # SIGKILL; a no-op for a child that already ended (os.kill would raise)
    finally:
        proc.wait(timeout=60)
    return killed


def check_exactly_once_after_kills(env, reference, folder: Path, kills: int, seed: int):
    rng = random.Random(seed)
    for _ in range(kills):
        kill_at_random_moment(env, folder, rng)
        # Whatever is on disk is whole: every shard file parses and holds its exact ids.
        plan = ShardPlan([r["id"] for r in env["reqs"]], SHARD, folder)
        for k in range(plan.n_shards):
            if plan.path(k).exists():
                assert [r["id"] for r in read_rows(plan.path(k))] == plan.members[k]
    generate_into(env, folder, batch_size=4)  # the same command, run again to its end
    assert (folder / G.GENERATIONS).read_bytes() == reference  # none lost, none twice


def test_kill9_then_rerun_gives_exactly_the_uninterrupted_records(env, reference, tmp_path):
    check_exactly_once_after_kills(env, reference, tmp_path / "gen", kills=1, seed=0)


@pytest.mark.slow
def test_kill9_at_several_random_moments(env, reference, tmp_path):
    check_exactly_once_after_kills(env, reference, tmp_path / "gen", kills=3, seed=1)


# ---------------------------------------------------------------------------- scale-out
def test_slurm_launcher_config_renders_a_multi_node_sbatch_script(
    compose_cfg, tmp_path, monkeypatch
):
    submitit = pytest.importorskip("submitit")
    from hydra.utils import get_class
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    cfg = compose_cfg(
        [
            "hydra/launcher=submitit_slurm",
            "trainer.devices=8",
            "trainer.num_nodes=4",
            "hydra.launcher.partition=gpu",
        ]
    )
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert get_class(params.pop("_target_")).__name__ == "SlurmLauncher"
    # What the launcher does with them, short of sbatch (an srun stand-in on PATH: submitit
    # only checks that one exists before it writes the script).
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    params.pop("submitit_folder")
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=tmp_path / "sub",
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m genixer.run", "uid")
    for line in ("--nodes=4", "--ntasks-per-node=8", "--gpus-per-node=8", "--partition=gpu"):
        assert f"#SBATCH {line}" in script
    assert "srun" in script


def test_vllm_backend_view_and_refusals(env, tmp_path):
    from genixer.models.vllm_backend import export_for_vllm, vllm_available

    view = export_for_vllm(env["root"] / "model", env["root"] / "tokenizer", tmp_path / "v")
    config = json.loads((view / "config.json").read_text())
    assert config["model_type"] == "llava" and "projector_type" not in config
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    assert (view / "model.safetensors").resolve() == (env["root"] / "model" / "model.safetensors")
    assert (view / "tokenizer.json").exists()
    shikra = tmp_path / "shikra"
    shikra.mkdir()
    raw = json.loads((env["root"] / "model" / "config.json").read_text())
    (shikra / "config.json").write_text(json.dumps(raw | {"projector_type": "linear"}))
    with pytest.raises(ValueError, match="backend=hf"):
        export_for_vllm(shikra, env["root"] / "tokenizer", tmp_path / "s")
    with pytest.raises(ValueError, match="backend"):
        G.run_generation(
            None,
            env["proc"],
            [],
            world=tmp_path,
            folder=tmp_path / "x",
            decoding=DECODING,
            batch_size=1,
            shard_size=1,
            backend="tgi",
        )
    if not vllm_available():
        with pytest.raises(ImportError, match="vllm"):
            G.run_generation(
                None,
                env["proc"],
                env["reqs"],
                world=env["root"] / "world",
                folder=tmp_path / "gen",
                decoding=DECODING,
                batch_size=4,
                shard_size=SHARD,
                backend="vllm",
                checkpoint=env["root"] / "model",
            )


@pytest.mark.gpu
def test_vllm_backend_writes_the_same_rows(env, tmp_path):
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a GPU")
    info = G.run_generation(
        None,
        env["proc"],
        env["reqs"],
        world=env["root"] / "world",
        folder=tmp_path / "gen",
        decoding=DECODING,
        batch_size=8,
        shard_size=SHARD,
        backend="vllm",
        checkpoint=env["root"] / "model",
    )
    rows = read_rows(tmp_path / "gen" / G.GENERATIONS)
    assert info["generated"] == len(rows) == len(env["reqs"])
    assert {"id", "raw", "new_tokens", "seed", "image", "instruction"} <= set(rows[0])
    again = tmp_path / "again"
    G.run_generation(
        None,
        env["proc"],
        env["reqs"],
        world=env["root"] / "world",
        folder=again,
        decoding=DECODING,
        batch_size=3,
        shard_size=SHARD,
        backend="vllm",
        checkpoint=env["root"] / "model",
    )
    assert (again / G.GENERATIONS).read_bytes() == (tmp_path / "gen" / G.GENERATIONS).read_bytes()


# ------------------------------------------------------------------- the CLI contract
@pytest.mark.slow
def test_killing_the_cli_at_random_moments_then_rerunning_gives_the_same_records(tmp_path):
    """``python -m genixer.run`` killed (SIGKILL, whole process group) at 3 random moments,
    re-run each time, ends with ``generation.records`` byte-identical to a clean run's."""
    from tests.conftest import tiny_overrides

    def command(cache: Path, run: str) -> list[str]:
        overrides = [o for o in tiny_overrides(cache) if not o.startswith("paths.output_dir")]
        return [
            sys.executable,
            "-m",
            "genixer.run",
            *overrides,
            "logger=none",
            "stop_after=generate",
            "generate.shard_size=2",
            f"hydra.run.dir={cache}/{run}",
        ]

    def records_of(done: subprocess.CompletedProcess) -> bytes:
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(Path(done.stdout.strip().splitlines()[-1]).read_text())
        return Path(summary["generation"]["records"]).read_bytes()

    start = time.perf_counter()
    clean = subprocess.run(command(tmp_path / "clean", "r"), capture_output=True, text=True)
    reference = records_of(clean)
    duration = time.perf_counter() - start
    rng = random.Random(7)
    for i in range(3):
        proc = subprocess.Popen(
            command(tmp_path / "killed", f"k{i}"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.2, 1.0) * duration)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    final = subprocess.run(command(tmp_path / "killed", "final"), capture_output=True, text=True)
    assert records_of(final) == reference


def test_judge_scoring_on_the_runner_matches_the_direct_scorer(tmp_path):
    from genixer.filters import judge_scoring as JS
    from genixer.models.judging import yes_probability
    from genixer.tasks import get_task
    from genixer.world.base import load_image

    items = ShapesWorld(seed=1, splits={"pool": 6}).materialize(tmp_path)["pool"]
    records = truth_records(items)
    judge, proc = tiny_judge()
    direct = {  # the reference: each record's pairs one at a time, the minimum kept
        r.id: min(
            yes_probability(judge, proc, [(load_image(tmp_path, r.image), q)], 1)[0]
            for q in get_task(r.task).judge_prompts(r.turns)
        )
        for r in records
    }
    p_yes = {
        "world": tmp_path,
        "folder": tmp_path / "s",
        "out_name": "scores.jsonl",
        "mode": "p_yes",
        "batch_size": 2,
        "seed": 0,
        "shard_size": 2,
    }
    info = JS.score_records(judge, proc, records, **p_yes)
    rows = read_rows(tmp_path / "s" / "scores.jsonl")
    assert [r["id"] for r in rows] == sorted(r.id for r in records) and info["images_per_s"] > 0
    assert all(abs(r["score"] - direct[r["id"]]) < 1e-5 for r in rows)
    again = JS.score_records(judge, proc, records, **p_yes)
    assert again["shards_resumed"] > 0 and again["scored_now"] == 0
    sampled = {"world": tmp_path, "out_name": "x.jsonl", "mode": "sampled", "seed": 5}
    s1 = JS.score_records(judge, proc, records[:3], **sampled, folder=tmp_path / "a", batch_size=3)
    s2 = JS.score_records(judge, proc, records[:3], **sampled, folder=tmp_path / "b", batch_size=1)
    assert (tmp_path / "a" / "x.jsonl").read_bytes() == (tmp_path / "b" / "x.jsonl").read_bytes()
    assert s1["processes"] == s2["processes"] == 1
