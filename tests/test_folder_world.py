"""``world=folder``: real unlabeled images as the generation pool, content-hash ids, the
labeled splits from the base world; and the pipeline end to end on it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genixer.core.build import build
from genixer.sources.folder import FolderWorld
from genixer.sources.shapes import ShapesWorld
from genixer.world import load_image, read_index
from tests.conftest import judge_scores, tiny_overrides

BASE = {"collection": 3, "judge": 2, "downstream": 1, "benchmark": 2}


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rs = np.random.RandomState(seed)
    paths = []
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i}.jpg"
        Image.fromarray(rs.randint(0, 255, (20 + i, 30, 3), np.uint8)).save(path)
        paths.append(path)
    return paths


def sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_pool_ids_are_content_hashes_whatever_the_names_and_the_listing(tmp_path):
    paths = make_images(tmp_path / "src", 4)
    splits = FolderWorld(str(tmp_path / "src"), ShapesWorld(seed=0, splits=BASE)).materialize(
        tmp_path / "w1"
    )
    ids = sorted(sha16(p) for p in paths)
    assert [i.id for i in splits["pool"]] == ids
    assert {k: len(v) for k, v in splits.items() if k != "pool"} == BASE
    assert all(i.scene is not None for k, v in splits.items() if k != "pool" for i in v)

    # the same files renamed, listed in another order by a .jsonl list: the same ids
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    lines = []
    for k, p in enumerate(reversed(paths)):
        shutil.copyfile(p, renamed / f"x{k}.jpg")
        lines.append(json.dumps({"image": f"x{k}.jpg", "id": f"sbu-{k}"}))
    (renamed / "list.jsonl").write_text("\n".join(lines) + "\n")
    again = FolderWorld(str(renamed / "list.jsonl"), ShapesWorld(seed=0, splits=BASE))
    splits2 = again.materialize(tmp_path / "w2")
    assert [i.id for i in splits2["pool"]] == ids

    # the index reads back: pool images without scenes, loadable RGB at their own size
    index = read_index(tmp_path / "w2")
    assert [i.id for i in index["pool"]] == ids
    assert all(i.scene is None and i.split == "pool" for i in index["pool"])
    sizes = {sha16(p): Image.open(p).size for p in paths}
    for item in index["pool"]:
        assert load_image(tmp_path / "w2", item).size == sizes[item.id]
    # a .json list (LLaVA's LCS-558K layout) works too
    entries = [{"id": str(k), "image": f"x{k}.jpg", "conversations": []} for k in range(4)]
    (renamed / "lcs.json").write_text(json.dumps(entries))
    splits3 = FolderWorld(str(renamed / "lcs.json"), ShapesWorld(seed=0, splits=BASE)).materialize(
        tmp_path / "w3"
    )
    assert [i.id for i in splits3["pool"]] == ids


def test_fingerprint_follows_the_files(tmp_path):
    paths = make_images(tmp_path / "src", 2)
    world = FolderWorld(str(tmp_path / "src"), ShapesWorld(seed=0, splits=BASE))
    before = world.fingerprint()
    assert world.fingerprint() == before
    Image.new("RGB", (9, 9), 3).save(paths[0])
    os.utime(paths[0], ns=(1, 1))
    assert world.fingerprint() != before


def test_bad_configurations_are_refused_clearly(tmp_path):
    make_images(tmp_path / "src", 1)
    with pytest.raises(ValueError, match="pool must be 0"):
        FolderWorld(str(tmp_path / "src"), ShapesWorld(splits={"pool": 3}))
    with pytest.raises(ValueError, match="does not exist"):
        FolderWorld(str(tmp_path / "nope"), ShapesWorld(splits=BASE))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="folder, .jsonl or .json"):
        FolderWorld(str(tmp_path / "notes.txt"), ShapesWorld(splits=BASE))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable image"):
        FolderWorld(str(tmp_path / "empty"), ShapesWorld(splits=BASE)).materialize(tmp_path / "w")


def test_world_folder_composes_with_the_shapes_base(compose_cfg, tmp_path):
    make_images(tmp_path / "src", 1)
    cfg = compose_cfg(["world=folder", f"world.images={tmp_path / 'src'}"])
    world = build(cfg.world)
    assert isinstance(world, FolderWorld) and isinstance(world.base, ShapesWorld)
    assert world.base.split_sizes["pool"] == 0
    assert cfg.generator.model.spec.image_size == cfg.world.base.image_size


def folder_overrides(tmp: Path, images: Path) -> list[str]:
    over = [
        o.replace("world.splits.", "world.base.splits.")
        for o in tiny_overrides(tmp)
        if not o.startswith("world.splits.pool")
    ]
    return [*over, "world=folder", f"world.images={images}"]


def test_pipeline_on_a_folder_pool_with_decontamination_and_dedup_caching(compose_cfg, tmp_path):
    """Generate -> dedup -> judge scoring -> select -> export on unlabeled folder images; a
    benchmark copy of one image keeps it out of the pool; a dedup change re-runs only dedup
    and what follows; the summary counts every skip."""
    from genixer.core.record import QA, Record
    from genixer.filters import selection as S
    from genixer.models.fuyu.model import load_judge
    from genixer.models.fuyu.processor import JudgeProcessor
    from genixer.pipeline.artifacts import project_tokenizer
    from genixer.pipeline.runner import make_context, run_pipeline
    from genixer.pipeline.stages import export as E
    from genixer.pipeline.stages.generate import generation_pool

    paths = make_images(tmp_path / "src", 5)
    (tmp_path / "src" / "broken.jpg").write_bytes(b"not an image")
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copyfile(paths[2], bench / "val_0001.jpg")
    over = [
        *folder_overrides(tmp_path, tmp_path / "src"),
        f"generate.decontaminate={bench}",
        "stop_after=export",
        "generator.vision_pretrain=null",
    ]
    cfg = compose_cfg(over)
    p = run_pipeline(cfg)
    summary = p.summary
    pool = generation_pool(make_context(cfg), p.results)  # what the generate stage read
    assert [i.id for i in pool] == sorted(sha16(q) for q in paths if q != paths[2])
    skipped = summary["skipped"]
    assert skipped["by_stage"]["world"] == {"not_an_image": 1}
    assert skipped["by_stage"]["decontaminate"] == {"benchmark_overlap": 1}
    rows = [json.loads(x) for x in Path(skipped["ledger"]).read_text().splitlines()]
    assert len(rows) == skipped["total"] == sum(skipped["counts"].values())
    gen = summary["generation"]
    assert skipped["by_stage"].get("dedup", {}) == {
        f"duplicate_{k}": v for k, v in gen["duplicates"].items() if v
    }
    assert gen["decontaminated"] == {"excluded_images": 1, "benchmark_images": 1}
    assert gen["oracle_accuracy"] is None and summary["select"]["oracle_accuracy"] is None
    assert set(gen["duplicates"]) == {"same_image", "corpus"}
    assert gen["num_deduplicated"] == gen["num_records"] - sum(gen["duplicates"].values())

    # the tiny generator's records are few and often unparsable: score, select and export
    # records written for the folder images with the run's own judge
    recs = [
        Record(f"r{k}", i.id, i.path, "common", "common", [QA("How many are there?", "2")], "")
        for k, i in enumerate(pool)
    ]
    world = p.results["world"].path
    judge = load_judge(p.results["train_judge"].path / "model")
    proc = JudgeProcessor.for_model(judge, project_tokenizer(p.results["collect"].path))
    scores = judge_scores(judge, proc, recs, world, tmp_path / "scored")
    assert set(scores) == {r.id for r in recs} and all(0 <= v <= 1 for v in scores.values())
    kept, info = S.select(recs, scores, None, 0.0)
    assert info["num_kept"] == len(recs) and info["oracle_accuracy"] is None
    out = E.export_llava(kept, world, tmp_path / "export")
    assert out["entries"] == len(recs)
    for r in recs:
        assert (tmp_path / "export" / "images" / r.image).stat().st_size > 0

    again = run_pipeline(compose_cfg([*over, "dedup.corpus_max=1"]))
    status = {k: v.status for k, v in again.results.items()}
    assert status["generate"] == status["decontaminate"] == status["world"] == "reused"
    assert status["dedup"] == "ran"
