"""The whole pipeline, shrunk: the CLI end to end, stage re-use, and resume."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import judge_scores, tiny_judge, tiny_overrides, truth_records

SUMMARY_KEYS = [
    ("generation", "num_records"),
    ("generation", "parse_failures"),
    ("generation", "oracle_accuracy"),
    ("generation", "oracle_errors"),
    ("generation", "task_mix"),
    ("generation", "diversity"),
    ("filter", "auroc"),
    ("select", "num_kept"),
    ("select", "oracle_accuracy"),
    ("downstream", "accuracy"),
    ("downstream", "baseline_accuracy"),
]
STAGES = [
    "world",
    "collect",
    "pretrain_vision",
    "train_base",
    "pairs",
    "train_generator",
    "generate",
    "dedup",
    "train_judge",
    "score",
    "select",
    "export",
    "downstream_baseline",
    "downstream_synthetic",
]


def run_cli(tmp: Path, run_dir: str, *extra: str) -> subprocess.CompletedProcess:
    overrides = [o for o in tiny_overrides(tmp) if not o.startswith("paths.output_dir")]
    return subprocess.run(
        [sys.executable, "-m", "genixer.run", *overrides, f"hydra.run.dir={tmp}/{run_dir}", *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_end_to_end_then_every_stage_is_reused(tmp_path):
    first = run_cli(tmp_path, "run1")
    assert first.returncode == 0, first.stderr[-3000:]
    path = Path(first.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "run1" / "summary.json"
    summary = json.loads(path.read_text())
    for group, key in SUMMARY_KEYS:
        assert key in summary[group], (group, key)
    assert set(summary["stages"]) == set(STAGES)
    assert all(s["status"] == "ran" for s in summary["stages"].values())
    assert summary["generation"]["num_records"] + summary["generation"]["parse_failures"] == 16
    assert "kinds" in summary["generation"]["diversity"]
    gen = summary["generation"]
    if gen["num_records"]:  # every false record counted under one reason
        false = round(gen["num_records"] * (1 - gen["oracle_accuracy"]))
        assert sum(gen["oracle_errors"].values()) == false, gen["oracle_errors"]
    assert Path(summary["generation"]["records"]).exists()  # the merged, final records
    scored = summary["generation"]["num_records"] > 0  # a tiny generator may parse nothing
    for stage in ("train_generator", "generate", "score", "downstream_synthetic"):
        if stage == "score" and not scored:
            assert summary["stages"][stage]["images_per_s"] is None
            continue
        assert summary["stages"][stage]["images_per_s"] > 0, stage
        if stage != "score":  # the judge reads one token per pair: no token rate
            assert summary["stages"][stage]["tokens_per_s"] > 0, stage
    assert (tmp_path / "run1" / "samples.png").exists() or summary["generation"]["num_records"] == 0
    exported = json.loads(Path(summary["export"]["llava_json"]).read_text())
    assert len(exported) == summary["select"]["num_kept"]
    card = Path(summary["export"]["card"]).read_text()  # the dataset card, with the command
    assert card.startswith("---\n") and "task_categories:" in card
    assert "python -m genixer.run filter=fuyu" in card
    viewer = tmp_path / "run1" / "viewer"  # every run writes its record viewer
    assert (viewer / "index.html").is_file() and (viewer / "data" / "index.js").is_file()

    second = run_cli(tmp_path, "run2")
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(Path(second.stdout.strip().splitlines()[-1]).read_text())
    assert all(s["status"] == "reused" for s in again["stages"].values())
    assert again["generation"] == summary["generation"]
    assert again["downstream"] == summary["downstream"]

    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        runs = db.execute("select status from runs").fetchall()
        params = db.execute("select count(*) from params").fetchone()[0]
        metrics = {r[0] for r in db.execute("select key from metrics")}
    assert [r[0] for r in runs] == ["FINISHED", "FINISHED"]
    assert params > 50
    assert {"downstream.accuracy", "select.num_kept", "stages.generate.seconds"} <= metrics


def test_a_downstream_only_change_reuses_every_upstream_stage(compose_cfg, tmp_path):
    from genixer.pipeline.runner import run_pipeline

    run_pipeline(compose_cfg(tiny_overrides(tmp_path)))
    p = run_pipeline(compose_cfg([*tiny_overrides(tmp_path), "downstream.finetune.lr=1e-4"]))
    status = {k: v.status for k, v in p.results.items()}
    assert status.pop("downstream_baseline") == "ran"
    assert status.pop("downstream_synthetic") == "ran"
    assert set(status.values()) == {"reused"}


def test_a_tau_change_retrains_the_generator_but_not_the_base(compose_cfg, tmp_path):
    """tau only picks each pair's instruction level: the tokenizer, the base model, the judge
    and the baseline arm are re-used; the pairs and everything after them run again."""
    from genixer.core.record import read_jsonl
    from genixer.pipeline.runner import run_pipeline

    run_pipeline(compose_cfg(tiny_overrides(tmp_path)))
    p = run_pipeline(compose_cfg([*tiny_overrides(tmp_path), "generator.collection.tau_all=1.0"]))
    status = {k: v.status for k, v in p.results.items()}
    reused = {"world", "collect", "pretrain_vision", "train_base", "train_judge"}
    assert {k for k, v in status.items() if v == "reused"} == reused | {"downstream_baseline"}
    pairs = list(read_jsonl(p.results["pairs"].path / "pairs.jsonl"))
    assert pairs and all("+" not in r["template_id"] for r in pairs)  # generic level only


class Crash(RuntimeError):
    pass


def test_generation_resumes_after_an_interrupt_and_writes_each_record_once(
    compose_cfg, tmp_path, monkeypatch
):
    from genixer.pipeline.runner import run_pipeline
    from genixer.pipeline.stages import generate as G

    overrides = [*tiny_overrides(tmp_path), "generate.per_image=2", "generate.batch_size=2"]
    real = G.generate
    calls = {"n": 0}

    def crash_after_three_batches(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise Crash("simulated crash mid-generation")
        return real(*args, **kwargs)

    monkeypatch.setattr(G, "generate", crash_after_three_batches)
    with pytest.raises(Crash):
        run_pipeline(compose_cfg(overrides))
    gen_dirs = list((tmp_path / "cache" / "generate").iterdir())
    assert len(gen_dirs) == 1 and not (gen_dirs[0] / "manifest.json").exists()
    assert len(list((gen_dirs[0] / "raw").glob("shard-*.jsonl"))) == 1  # one whole shard

    monkeypatch.setattr(G, "generate", real)
    resumed = run_pipeline(compose_cfg(overrides))
    info = resumed.results["generate"].info
    assert info["shards_resumed"] == 1
    lines = []
    for shard in sorted((gen_dirs[0] / "raw").glob("shard-*.jsonl")):
        lines += shard.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) == 16

    # identical to a run that was never interrupted
    fresh = tmp_path / "fresh"
    clean = run_pipeline(
        compose_cfg([*tiny_overrides(fresh), "generate.per_image=2", "generate.batch_size=2"])
    )
    clean_records = (clean.results["generate"].path / "records.jsonl").read_text()
    assert (resumed.results["generate"].path / "records.jsonl").read_text() == clean_records


def test_stop_after_generate_runs_no_later_stage(compose_cfg, tmp_path):
    from genixer.pipeline.runner import run_pipeline

    p = run_pipeline(compose_cfg([*tiny_overrides(tmp_path), "stop_after=generate"]))
    summary = p.summary
    assert list(p.results)[-2:] == ["generate", "dedup"]  # dedup ends the generate step
    assert "generation" in summary and "downstream" not in summary
    with pytest.raises(ValueError, match="stop_after"):
        run_pipeline(compose_cfg([*tiny_overrides(tmp_path), "stop_after=evaluate"]))


def test_judge_scores_records_in_both_modes(tmp_path):
    """Records made from ground truth, scored by a tiny judge: P(Yes) is deterministic and
    batch-invariant; the original's sampled score is reproducible for a seed."""
    from genixer.sources.shapes import ShapesWorld

    items = ShapesWorld(seed=1, splits={"pool": 6}).materialize(tmp_path)["pool"]
    records = truth_records(items)
    judge, proc = tiny_judge()
    p1 = judge_scores(judge, proc, records, tmp_path, tmp_path / "a", "p_yes", 4, seed=0)
    p2 = judge_scores(judge, proc, records, tmp_path, tmp_path / "b", "p_yes", 1, seed=5)
    assert set(p1) == {r.id for r in records}
    assert all(abs(p1[k] - p2[k]) < 1e-5 and 0 <= p1[k] <= 1 for k in p1)
    s1 = judge_scores(judge, proc, records, tmp_path, tmp_path / "c", "sampled", 4, seed=3)
    s2 = judge_scores(judge, proc, records, tmp_path, tmp_path / "d", "sampled", 2, seed=3)
    assert s1 == s2 and all(0 < v <= 1 for v in s1.values())
    with pytest.raises(ValueError, match="score_mode"):
        judge_scores(judge, proc, records, tmp_path, tmp_path / "e", "vibes", 4, seed=3)


def test_question_temperature_is_its_own_generation_setting(compose_cfg, tmp_path):
    """``generate.question_temperature`` null keeps the generate stage's key of plain
    sampling; set, it is a new stage whose records say so; equal to ``temperature`` it writes
    the same texts."""
    from genixer.core.record import read_jsonl
    from genixer.pipeline.runner import run_pipeline
    from genixer.pipeline.stages.dedup import read_deduplicated
    from genixer.pipeline.stages.generate import GENERATIONS

    base = [*tiny_overrides(tmp_path), "stop_after=generate"]
    plain = run_pipeline(compose_cfg([*base, "generate.question_temperature=null"]))
    same = run_pipeline(compose_cfg([*base, "generate.question_temperature=0.2"]))
    assert same.results["train_generator"].status == "reused"
    assert same.results["generate"].status == "ran"

    def texts(p):  # every request's raw text (the tiny generator's rarely parse)
        return {r["id"]: r["raw"] for r in read_jsonl(p.results["generate"].path / GENERATIONS)}

    assert texts(plain) and texts(same) == texts(plain)
    manifest = json.loads((same.results["generate"].path / "manifest.json").read_text())
    assert manifest["config"]["generate"]["question_temperature"] == 0.2
    records = read_deduplicated(same.results["dedup"].path)  # what scoring would read
    assert all(r.provenance["question_temperature"] == 0.2 for r in records)
    again = run_pipeline(compose_cfg([*base, "generate.question_temperature=null"]))
    assert again.results["generate"].status == "reused"
