"""Selection that keeps the mix (``select.stratify``) and the oracle judge of known quality
(``filter=oracle``), on hand-made records."""

from __future__ import annotations

import random

import pytest

from genixer.core.record import QA, Record
from genixer.evaluation.metrics import auroc
from genixer.filters.base import FilterEnv
from genixer.filters.oracle import OracleFilter, noise_scale
from genixer.filters.selection import select, stratum


def record(rid: str, task: str = "common", kind: str | None = "count", oracle=True) -> Record:
    turns = [QA("How many?", "2", kind=kind)]
    return Record(rid, f"img-{rid}", f"{rid}.png", task, "generic", turns, "", oracle=oracle)


def test_the_stratum_of_a_record():
    assert stratum(record("a", "common", "count"), "task") == "common"
    assert stratum(record("a", "common", "count"), "kind") == "common:count"
    assert stratum(record("a", "rec", None), "kind") == "rec"  # no kind known: its task
    assert stratum(record("a", "adv", "unknown"), "kind") == "adv"


def test_every_stratum_keeps_its_top_share():
    """A judge that scores one kind high keeps mostly that kind; stratified, each kind keeps
    the share the threshold keeps overall (here 60 of 120 = a half), its best-scored ones."""
    rng = random.Random(0)
    records, scores = [], {}
    for kind, centre in (("count", 0.8), ("color", 0.4), ("exists", 0.2)):
        for i in range(40):
            rec = record(f"{kind}{i:02d}", kind=kind)
            records.append(rec)
            scores[rec.id] = centre + rng.uniform(-0.1, 0.1)
    plain, _ = select(records, scores, None, 0.5)
    assert {r.turns[0].kind for r in plain} == {"count"}
    threshold = sorted(scores.values())[60]  # keeps the top 60 of 120
    kept, info = select(records, scores, None, threshold, stratify="kind")
    assert info["num_kept"] == 60
    for kind in ("count", "color", "exists"):
        mine = [r for r in records if r.turns[0].kind == kind]
        best = sorted(mine, key=lambda r: scores[r.id])[-20:]
        assert {r.id for r in kept if r.turns[0].kind == kind} == {r.id for r in best}
        block = info["strata"][f"common:{kind}"]
        assert (block["generated"], block["kept"]) == (40, 20)
        assert block["generated_share"] == pytest.approx(1 / 3, abs=1e-3)
        assert block["kept_share"] == pytest.approx(1 / 3, abs=1e-3)
    assert [r.id for r in kept] == [r.id for r in records if r.id in {k.id for k in kept}]


def test_a_band_keeps_the_same_quantile_range_in_every_stratum():
    """Counting records score 0.50..0.95, colour records 0.00..0.45. The band [0.5, 0.75)
    holds count0..count4: ranks 10..14 of 20, the 50%-75% range; stratified by kind, each
    kind keeps its own 50%-75% ranks instead."""
    records = [record(f"{k}{i}", kind=k) for k in ("count", "color") for i in range(10)]
    scores = {
        r.id: (0.5 if r.turns[0].kind == "count" else 0.0) + int(r.id[-1]) / 20 for r in records
    }
    kept, _ = select(records, scores, [0.5, 0.75], None, stratify="task")
    assert sorted(r.id for r in kept) == ["count0", "count1", "count2", "count3", "count4"]
    kept, _ = select(records, scores, [0.5, 0.75], None, stratify="kind")
    per_kind = {k: sorted(r.id for r in kept if r.turns[0].kind == k) for k in ("count", "color")}
    assert per_kind == {
        "count": ["count5", "count6", "count7"],
        "color": ["color5", "color6", "color7"],
    }


def test_ties_a_lone_record_and_an_unscored_stratum():
    records = [record(f"t{i}", kind="count") for i in range(4)]
    records += [record("lone", kind="color"), record("unscored", kind="exists")]
    scores = {f"t{i}": 0.5 for i in range(4)} | {"lone": 0.9}
    kept, info = select(records, scores, None, 0.6, stratify="kind")  # keeps 1 of 5 overall
    assert [r.id for r in kept] == ["t3"]  # the top fifth of 4 tied records: the last by id
    kept, info = select(records, scores, None, 0.5, stratify="kind")  # keeps everything scored
    assert {r.id for r in kept} == {"t0", "t1", "t2", "t3", "lone"}
    assert info["strata"]["common:exists"] == {
        "generated": 1,
        "kept": 0,
        "generated_share": round(1 / 6, 4),
        "kept_share": 0.0,
    }
    tied, _ = select(records, scores, [0.0, 0.55], None, stratify="kind")
    again, _ = select(list(reversed(records)), scores, [0.0, 0.55], None, stratify="kind")
    assert {r.id for r in tied} == {r.id for r in again} == {"t0", "t1", "t2", "lone"}


def test_without_scores_stratification_keeps_everything():
    records = [record(f"r{i}") for i in range(5)]
    kept, info = select(records, None, None, None, stratify="task")
    assert len(kept) == 5 and info["strata"]["common"]["kept"] == 5


@pytest.mark.parametrize("target", [1.0, 0.9, 0.8, 0.7])
def test_the_oracle_judges_auroc_lands_on_its_setting(tmp_path, target):
    rng = random.Random(1)
    records = [record(f"r{i:04d}", oracle=rng.random() < 0.6) for i in range(4000)]
    env = FilterEnv(
        world=tmp_path, splits={}, tokenizer=None, trainer=None, checkpoint_every=0, seed=0
    )
    oracle = OracleFilter(name="oracle", target_auroc=target, band=None, threshold=0.5)
    info = oracle.score(env, None, records, tmp_path)
    assert info["auroc"] == pytest.approx(target, abs=0.02)
    again = OracleFilter(name="oracle", target_auroc=target, band=None, threshold=0.5)
    (tmp_path / "again").mkdir()
    assert again.score(env, None, records, tmp_path / "again")["auroc"] == info["auroc"]  # seeded
    assert (tmp_path / "again" / "scores.jsonl").read_text() == (
        tmp_path / "scores.jsonl"
    ).read_text()
    if target == 1.0:
        kept, sel = select(records, {r.id: s for r, s in _scores(tmp_path, records)}, None, 0.5)
        assert sel["oracle_accuracy"] == 1.0 and len(kept) == sum(r.oracle for r in records)


def _scores(folder, records):
    import json

    rows = {json.loads(x)["id"]: json.loads(x)["score"] for x in (folder / "scores.jsonl").open()}
    return [(r, rows[r.id]) for r in records]


def test_the_oracle_refuses_records_without_a_verdict_and_impossible_settings(tmp_path):
    env = FilterEnv(
        world=tmp_path, splits={}, tokenizer=None, trainer=None, checkpoint_every=0, seed=0
    )
    oracle = OracleFilter(name="oracle", target_auroc=0.9, band=None, threshold=0.5)
    with pytest.raises(ValueError, match="needs oracle verdicts"):
        oracle.score(env, None, [record("a", oracle=None)], tmp_path)
    for bad in (0.5, 1.2):
        with pytest.raises(ValueError, match="target_auroc"):
            noise_scale(bad)
    assert auroc([0.1, 0.9], [False, True]) == 1.0


def test_filter_oracle_is_refused_on_a_world_without_ground_truth(compose_cfg, tmp_path):
    from genixer.config.check import ConfigError
    from genixer.config.schema import check_config

    (tmp_path / "pool").mkdir()
    base = [f"paths.root_dir={tmp_path}", "filter=oracle"]
    check_config(compose_cfg(base))
    folder = compose_cfg([*base, "world=folder", f"world.images={tmp_path}/pool"])
    with pytest.raises(ConfigError, match=r"^filter: filter=oracle needs a world with ground"):
        check_config(folder)
    with pytest.raises(ConfigError, match=r"^filter\.target_auroc"):
        check_config(compose_cfg([*base, "filter.target_auroc=0.4"]))


def test_a_pipeline_with_the_oracle_judge_and_stratified_selection(compose_cfg, tmp_path):
    """The oracle needs no training stage; the summary reports its AUROC and, per stratum,
    the generated and kept shares side by side."""
    from genixer.pipeline.runner import run_pipeline
    from tests.conftest import tiny_overrides

    cfg = compose_cfg([*tiny_overrides(tmp_path, "oracle"), "select.stratify=kind"])
    run = run_pipeline(cfg)
    assert "train_filter" not in run.results and run.results["score"].status == "ran"
    summary = run.summary
    assert summary["filter"]["name"] == "oracle"
    strata = summary["select"]["strata"]
    assert sum(s["generated"] for s in strata.values()) == summary["generation"]["num_deduplicated"]
    assert sum(s["kept"] for s in strata.values()) == summary["select"]["num_kept"]
    if summary["filter"]["auroc"] is not None:  # a tiny generator may write only true records
        assert summary["filter"]["auroc"] == 1.0
        assert summary["select"]["oracle_accuracy"] in (1.0, None)


def test_an_empty_selection_reports_no_gain():
    """A synthetic arm that had no synthetic data is the baseline again: its summary says so
    (no gain, zero records) instead of reporting a measured gain of zero."""
    from types import SimpleNamespace

    from genixer.pipeline.stages.downstream import DownstreamSynthetic

    def results(records: int) -> dict:
        syn = {"accuracy": 0.5, "per_category": {}, "synthetic_records": records}
        base = {"accuracy": 0.4, "per_category": {}}
        return {
            "downstream_synthetic": SimpleNamespace(info=syn),
            "downstream_baseline": SimpleNamespace(info=base),
        }

    empty = DownstreamSynthetic().summarize(None, results(0))["downstream"]
    assert empty["gain"] is None and empty["synthetic_records"] == 0
    full = DownstreamSynthetic().summarize(None, results(120))["downstream"]
    assert full["gain"] == pytest.approx(0.1) and full["synthetic_records"] == 120
