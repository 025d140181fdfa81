"""Genixer_S end to end, shrunk: REC data generated, CLIP-filtered, exported, used."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_overrides


def test_shikra_rec_clip_pipeline(compose_cfg, tmp_path):
    from genixer.pipeline import Pipeline

    cfg = compose_cfg(
        [
            *tiny_overrides(tmp_path, "clip"),
            "generator=shikra",
            "task=rec",
            "generator.max_new_tokens=30",
            "filter.threshold=-1.0",
        ]
    )
    assert cfg.generator.model.spec.projector_type == "linear"
    assert cfg.generate.temperature == 0.0  # greedy, as Genixer_S
    assert cfg.downstream.eval.metric == "rec"
    p = Pipeline(cfg)
    summary = p.run()
    assert set(p.results) >= {"train_clip", "score", "select", "downstream_synthetic"}
    gen = summary["generation"]
    assert (
        gen["num_records"] + gen["parse_failures"] == cfg.world.splits.pool * cfg.generate.per_image
    )
    scores = [json.loads(x) for x in (p.scored.path / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == gen["num_records"]
    # every scored record is kept at threshold -1 (cosine >= -1); unscored ones are not
    assert summary["select"]["num_kept"] == sum(s["score"] is not None for s in scores)
    # the CLIP's own threshold, calibrated on judge-split pairs, is what "calibrated" selects at
    calibrated = p.judge.info["calibrated_threshold"]
    assert -1.0 <= calibrated <= 1.0 and p.judge.info["calibration_balanced_accuracy"] >= 0.5
    p.cfg.filter.threshold = "calibrated"
    assert p._threshold() == calibrated
    # the margin extension scores anew with the same CLIP; a similarity threshold is refused
    plain = p.scored
    p.cfg.filter.margin.enabled = True
    with pytest.raises(ValueError, match="margin"):
        p._threshold()
    p.cfg.filter.threshold = 0.0
    p._filter()
    assert p.results["train_clip"].status == "reused" and p.results["score"].status == "ran"
    assert p.scored.path != plain.path and p.scored.info["no_rival_window"] == 0
    assert set(p.scores) == {r["id"] for r in scores if r["score"] is not None}
    assert p.selected.info["num_kept"] == sum(v >= 0 for v in p.scores.values())
    p.cfg.filter.margin.enabled = False
    p.cfg.filter.threshold = -1.0
    p._filter()
    assert p.results["score"].status == "reused" and p.scored.path == plain.path
    # REC records are also exported in Shikra's REC jsonl, boxes in pixels of the image
    rows = [json.loads(x) for x in (p.exported.path / "shikra_rec.jsonl").read_text().splitlines()]
    assert len(rows) == summary["export"]["shikra_rec"] <= summary["select"]["num_kept"]
    for row in rows:
        assert set(row) >= {"img_path", "expression", "bbox", "height", "width", "score"}
        x0, y0, x1, y1 = row["bbox"]
        assert 0 <= x0 <= x1 <= row["width"] and 0 <= y0 <= y1 <= row["height"]
        assert (p.exported.path / "images" / row["img_path"]).is_file()
    assert set(summary["downstream"]["per_category"]) <= {
        "rec_color",
        "rec_color_shape",
        "rec_position",
        "rec_shape",
        "rec_shape_position",
    }
