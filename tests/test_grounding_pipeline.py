"""Genixer_S end to end, shrunk: REC data generated, CLIP-filtered, exported, used."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_overrides


def test_shikra_rec_clip_pipeline(compose_cfg, tmp_path):
    from genixer.config.schema import check_config
    from genixer.core.build import build_filter
    from genixer.filters.base import read_scores
    from genixer.pipeline.runner import run_pipeline

    overrides = [
        *tiny_overrides(tmp_path, "clip"),
        "generator=shikra",
        "task=rec",
        "generator.max_new_tokens=30",
        "filter.threshold=-1.0",
    ]
    cfg = compose_cfg(overrides)
    assert cfg.generator.model.spec.projector_type == "linear"
    assert cfg.generate.temperature == 0.0  # greedy, as Genixer_S
    assert cfg.downstream.eval.metric == "rec"
    p = run_pipeline(cfg)
    summary = p.summary
    assert set(p.results) >= {"train_clip", "score", "select", "downstream_synthetic"}
    gen = summary["generation"]
    assert (
        gen["num_records"] + gen["parse_failures"] == cfg.world.splits.pool * cfg.generate.per_image
    )
    plain = p.results["score"]
    scores = [json.loads(x) for x in (plain.path / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == gen["num_records"]
    # every scored record is kept at threshold -1 (cosine >= -1); unscored ones are not
    assert summary["select"]["num_kept"] == sum(s["score"] is not None for s in scores)
    # the CLIP's own threshold, calibrated on judge-split pairs, is what "calibrated" selects at
    trained = p.results["train_clip"].info
    calibrated = trained["calibrated_threshold"]
    assert -1.0 <= calibrated <= 1.0 and trained["calibration_balanced_accuracy"] >= 0.5
    cfg.filter.threshold = "calibrated"
    assert build_filter(cfg.filter).threshold_for(trained) == calibrated
    # the margin extension scores anew with the same CLIP; a similarity threshold is refused
    # (by the config check, before any stage runs)
    cfg.filter.margin.enabled = True
    with pytest.raises(ValueError, match="margin"):
        check_config(cfg)
    margin = run_pipeline(
        compose_cfg(
            [
                *overrides,
                "filter.margin.enabled=true",
                "filter.threshold=0.0",
                "stop_after=select",
            ]
        )
    )
    assert margin.results["train_clip"].status == "reused"
    assert margin.results["score"].status == "ran"
    scored = margin.results["score"]
    assert scored.path != plain.path and scored.info["no_rival_window"] == 0
    margin_scores = read_scores(scored.path)
    assert set(margin_scores) == {r["id"] for r in scores if r["score"] is not None}
    assert margin.results["select"].info["num_kept"] == sum(v >= 0 for v in margin_scores.values())
    again = run_pipeline(compose_cfg([*overrides, "stop_after=select"]))
    assert again.results["score"].status == "reused" and again.results["score"].path == plain.path
    # REC records are also exported in Shikra's REC jsonl, boxes in pixels of the image
    exported = p.results["export"]
    rows = [json.loads(x) for x in (exported.path / "shikra_rec.jsonl").read_text().splitlines()]
    assert len(rows) == summary["export"]["shikra_rec"] <= summary["select"]["num_kept"]
    for row in rows:
        assert set(row) >= {"img_path", "expression", "bbox", "height", "width", "score"}
        x0, y0, x1, y1 = row["bbox"]
        assert 0 <= x0 <= x1 <= row["width"] and 0 <= y0 <= y1 <= row["height"]
        assert (exported.path / "images" / row["img_path"]).is_file()
    assert set(summary["downstream"]["per_category"]) <= {
        "rec_color",
        "rec_color_shape",
        "rec_position",
        "rec_shape",
        "rec_shape_position",
    }
