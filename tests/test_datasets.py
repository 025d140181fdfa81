"""Dataset converters on hand-written fixtures in each dataset's real layout (field names and
nesting as released), bad records skipped with their reasons, and ``world=collection``."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from PIL import Image

from genixer.core.record import read_jsonl
from genixer.sources.datasets import CONVERTERS, ConversionLedger, get_converter
from genixer.sources.datasets.base import Sample, chunk_sizes, load_plain_pickle
from genixer.tasks import get_task

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
VQA_Q = "vqav2/v2_OpenEnded_mscoco_train2014_questions.json"
VQA_A = "vqav2/v2_mscoco_train2014_annotations.json"
REFS = "refcoco/refs(unc)"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The fixtures as a data root: annotation files copied, images written at their sizes,
    and REFER's refs as the pickle it is released as (from the hand-written JSON)."""
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    for rel, (w, h) in json.loads((FIXTURES / "images.json").read_text()).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (90, 120, 200)).save(root / rel)
    refs = json.loads((root / f"{REFS}.json").read_text())
    with open(root / f"{REFS}.p", "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return root


def convert(root: Path, name: str, **kw) -> tuple[list[Sample], ConversionLedger, object]:
    ledger = ConversionLedger()
    conv = get_converter(name)(root, **kw)
    return list(conv.convert(ledger)), ledger, conv


# (converter, arguments, kept, skipped by reason, excluded by reason)
CASES = {
    "vqav2_common": (
        "vqav2",
        {"questions": VQA_Q, "annotations": VQA_A, "image_dir": "coco/train2014"},
        4,
        {"duplicate_id": 1, "image_not_found": 1, "missing_field": 1, "no_annotation": 1},
        {},
    ),
    "vqav2_md": (
        "vqav2",
        {"task": "md", "questions": VQA_Q, "annotations": VQA_A, "image_dir": "coco/train2014"},
        1,
        {"duplicate_id": 1, "missing_field": 1, "no_annotation": 1, "too_few_turns": 2},
        {},
    ),
    "gqa": (
        "gqa",
        {"questions": "gqa/train_balanced_questions.json", "image_dir": "gqa/images"},
        2,
        {"duplicate_id": 1, "image_not_found": 1, "missing_field": 1},
        {},
    ),
    "pope": (
        "pope",
        {"questions": "pope/coco_pope_train.jsonl", "image_dir": "coco/train2014"},
        3,
        {
            "bad_json": 1,
            "bad_label": 1,
            "duplicate_id": 1,
            "image_not_found": 1,
            "image_path_escapes_root": 1,
        },
        {},
    ),
    "aokvqa": (
        "aokvqa",
        {"questions": "aokvqa/aokvqa_v1p0_train.json", "image_dir": "coco/train2017"},
        2,
        {"bad_choice_index": 1, "missing_field": 1},
        {},
    ),
    "llava_conv": (
        "llava_instruct",
        {"conversations": "llava/conversation_58k.json", "image_dir": "coco/train2017"},
        3,
        {
            "bad_roles": 1,
            "duplicate_id": 1,
            "image_not_found": 1,
            "no_image": 1,
            "too_few_turns": 1,
        },
        {},
    ),
    "refcoco_rec": (
        "refcoco",
        {"refs": f"{REFS}.p", "instances": "refcoco/instances.json", "image_dir": "coco/train2014"},
        2,
        {
            "box_outside_image": 1,
            "duplicate_id": 1,
            "empty_expression": 1,
            "image_not_found": 1,
            "missing_field": 1,
            "unknown_ann_id": 1,
        },
        {"split_testA": 2},
    ),
    "vg_reg": (
        "vg_regions",
        {
            "regions": "vg/region_descriptions.json",
            "image_data": "vg/image_data.json",
            "image_dir": "vg",
        },
        3,
        {
            "box_outside_image": 1,
            "duplicate_id": 1,
            "empty_box": 1,
            "empty_expression": 1,
            "image_not_found": 2,  # one missing image holds two regions
            "missing_field": 1,
        },
        {},
    ),
    "pointqa_release": (
        "pointqa_local",
        {
            "questions": "pointqa/localqa_dataset.json",
            "image_list": "pointqa/localqa_train_imgs.json",
            "image_dir": "vg",
        },
        3,
        {"missing_field": 1, "point_outside_image": 1},
        {"not_in_image_list": 1},
    ),
    "pointqa_shikra_jsonl": (
        "pointqa_local",
        {"questions": "pointqa/pointQA_local_train.jsonl", "image_dir": "vg", "where": "box"},
        2,
        {"duplicate_id": 1, "missing_field": 1},
        {},
    ),
    "visual7w": (
        "visual7w",
        {"questions": "visual7w/dataset_v7w_pointing.json", "image_dir": "visual7w/images"},
        1,
        {"box_outside_image": 1, "image_not_found": 1, "unknown_box_id": 1},
        {"split_test": 1},
    ),
    "boxcot": (
        "gpt4gen_boxcot",
        {
            "questions": "shikra/GPT4GEN_BoxCoT_train.jsonl",
            "image_dir": "flickr30k/flickr30k-images",
        },
        2,
        {
            "bad_box_index": 1,
            "box_outside_image": 1,
            "missing_field": 1,
            "placeholder_count_mismatch": 1,
        },
        {},
    ),
    "rd": (
        "gpt4gen_rd",
        {
            "questions": "shikra/GPT4GEN_RD_BoxCoT_train.jsonl",
            "image_dir": "flickr30k/flickr30k-images",
        },
        1,
        {"image_not_found": 1, "no_box": 1, "single_turn_dialogue": 1},
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_converter_keeps_good_records_and_ledgers_every_bad_one(data_root, case):
    name, kw, kept, skipped, excluded = CASES[case]
    samples, ledger, conv = convert(data_root, name, **kw)
    assert len(samples) == kept
    assert ledger.reasons(conv.label) == skipped
    assert dict(conv.excluded) == excluded
    # every skip is in the ledger with its reason, source file and position
    assert sum(r.get("records", 1) for r in ledger.rows) == sum(skipped.values())
    for row in ledger.rows:
        assert row["reason"] and row["where"] and row["stage"] == "world"
        assert (data_root / row["source"]).is_file()
    for s in samples:
        task = get_task(s.task)
        assert s.task == conv.task and s.dataset == conv.label
        assert task.parse(task.serialize(s.turns))  # the generator's target parses back
        assert (data_root / s.image).is_file() and not Path(s.image).is_absolute()


def test_every_converter_has_a_fixture_case():
    assert {c[0] for c in CASES.values()} == set(CONVERTERS)


def test_vqa_family_fields(data_root):
    samples, _, _ = convert(data_root, *CASES["vqav2_common"][:1], **CASES["vqav2_common"][1])
    by_id = {s.source_id: s for s in samples}
    assert by_id["9000"].turns[0].question == "What color is the bus?"
    assert by_id["9000"].turns[0].answer == "red"  # the multiple_choice_answer
    assert by_id["9000"].image == "coco/train2014/COCO_train2014_000000000009.jpg"
    strict, ledger, _ = convert(data_root, "vqav2", min_agreement=9, **CASES["vqav2_common"][1])
    assert {s.source_id for s in strict} == {"9002", "25000"}  # 9 of 10 annotators agreed
    assert ledger.reasons("vqav2")["low_agreement"] == 3  # 9000, 9001, 77000: 8 of 10
    (md,), _, _ = convert(data_root, *CASES["vqav2_md"][:1], **CASES["vqav2_md"][1])
    assert [t.question for t in md.turns][0] == "What color is the bus?" and len(md.turns) == 3

    mc, _, _ = convert(data_root, "aokvqa", **CASES["aokvqa"][1])
    assert mc[0].turns[0].options == ["skateboarder", "train", "delivery", "cab"]
    assert mc[0].turns[0].answer == "D" and mc[0].turns[0].answer_text() == "cab"
    assert mc[0].image == "coco/train2017/000000000009.jpg"
    common, _, _ = convert(data_root, "aokvqa", task="common", **CASES["aokvqa"][1])
    assert common[0].turns[0].answer == "cab"

    pope, _, _ = convert(data_root, "pope", **CASES["pope"][1])
    assert [s.turns[0].answer for s in pope] == ["yes", "no", "yes"]  # "Yes" lower-cased


def test_llava_conversations_split_into_dialogues(data_root):
    samples, _, _ = convert(data_root, "llava_instruct", **CASES["llava_conv"][1])
    assert [len(s.turns) for s in samples] == [2, 2, 2]  # 4 turns -> 2 + 2
    assert "<image>" not in samples[0].turns[0].question
    assert samples[2].turns[0].question == "What animal is in the picture?"
    singles, _, _ = convert(data_root, "llava_instruct", task="common", **CASES["llava_conv"][1])
    assert len(singles) == 4 + 2 + 1  # every turn of every usable conversation
    assert chunk_sizes(7, 2, 3) == [3, 2, 2] and chunk_sizes(1, 2, 3) == []


def test_refcoco_boxes_and_pickle(data_root):
    rec, _, _ = convert(data_root, "refcoco", **CASES["refcoco_rec"][1])
    json_rec, _, _ = convert(
        data_root, "refcoco", **(CASES["refcoco_rec"][1] | {"refs": f"{REFS}.json"})
    )
    assert [s.to_dict() for s in rec] == [s.to_dict() for s in json_rec]
    # COCO bbox [1.08, 187.69, 611.59, 285.84] in a 640x480 image, as x0,y0,x1,y1 in [0,1]
    assert rec[0].turns[0].question == "Where is red bus in the image?"
    assert rec[0].turns[0].answer == "[0.002,0.391,0.957,0.987]"
    assert rec[0].turns[0].boxes == [[0.002, 0.391, 0.957, 0.987]]
    reg, _, _ = convert(data_root, "refcoco", task="reg", **CASES["refcoco_rec"][1])
    assert reg[1].turns[0].question == "Describe the region [0.002,0.391,0.957,0.987]."
    assert reg[1].turns[0].answer == "the big red bus on the left"
    both, _, _ = convert(data_root, "refcoco", splits=["train", "testA"], **CASES["refcoco_rec"][1])
    assert len(both) == 4

    class Evil:
        def __reduce__(self):
            return (print, ("pickles must not run code",))

    bad = data_root / "evil.p"
    bad.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(pickle.UnpicklingError, match="only plain data"):
        load_plain_pickle(bad)


def test_vg_regions_tolerate_a_pixel_of_overhang(data_root):
    samples, _, _ = convert(data_root, "vg_regions", task="rec", **CASES["vg_reg"][1])
    by_id = {s.source_id: s for s in samples}
    # x 681 + width 120 = 801 in an 800 px image: within the 2 px tolerance, clipped to 1.0
    assert by_id["1387"].turns[0].answer == "[0.851,0.000,1.000,0.335]"
    assert by_id["1387"].turns[0].question == "Where is a tall white building in the image?"
    assert by_id["2001"].image == "vg/VG_100K_2/2.jpg"
    strict, ledger, _ = convert(data_root, "vg_regions", box_tolerance_px=0, **CASES["vg_reg"][1])
    assert "1387" not in {s.source_id for s in strict}
    assert ledger.reasons("vg_regions")["box_outside_image"] == 2


def test_pointing_questions(data_root):
    local, _, _ = convert(data_root, "pointqa_local", **CASES["pointqa_release"][1])
    assert local[0].turns[0].question == "What color is the shirt at [0.200,0.458]?"
    assert local[0].turns[0].answer == "red" and local[1].turns[0].answer == "blue"
    boxed, _, _ = convert(data_root, "pointqa_local", **CASES["pointqa_shikra_jsonl"][1])
    assert boxed[0].turns[0].question == "What color is the shirt at [0.125,0.333,0.275,0.583]?"
    with pytest.raises(ValueError, match="where"):
        get_converter("pointqa_local")(data_root, questions="x", where="somewhere")

    (v7w,), _, _ = convert(data_root, "visual7w", **CASES["visual7w"][1])
    (qa,) = v7w.turns
    assert qa.question.startswith("Which object is on the table? Candidates: [")
    assert qa.answer == "[0.240,0.533,0.360,0.640]"  # box 12: x 120, y 200, w 60, h 40
    assert qa.answer in qa.question and len(qa.boxes) == 5  # 4 candidates + the answer
    again, _, _ = convert(data_root, "visual7w", **CASES["visual7w"][1])
    assert again[0].turns[0].question == qa.question  # the candidate order is stable


def test_gpt4gen_boxes_inline(data_root):
    cot, _, _ = convert(data_root, "gpt4gen_boxcot", **CASES["boxcot"][1])
    q, a = cot[0].turns[0].question, cot[0].turns[0].answer
    assert q == "What are the two men[0.062,0.224,0.320,0.992;0.380,0.160,0.636,0.987] doing?"
    assert a.startswith("The man on the left[0.062,0.224,0.320,0.992] holds a rake[")
    assert a.endswith("So the answer is gardening")
    assert cot[1].turns[0].answer.endswith("head. So the answer is Yes")
    (rd,), _, _ = convert(data_root, "gpt4gen_rd", **CASES["rd"][1])
    assert len(rd.turns) == 3 and all(t.boxes for t in rd.turns)


def test_bad_files_fail_loudly(data_root):
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        convert(data_root, "gqa", questions="gqa/nope.json")
    with pytest.raises(ValueError, match="'questions'"):  # annotations given as questions
        convert(data_root, "vqav2", questions=VQA_A, annotations=VQA_A)
    with pytest.raises(ValueError, match="escapes"):
        convert(data_root, "gqa", questions="../../outside.json")
    with pytest.raises(ValueError, match="converts to"):
        get_converter("pope")(data_root, questions="x", task="rec")


# --- world=collection -------------------------------------------------------------------


def collection_cfg(compose_cfg, root: Path, tmp: Path, *extra: str, overrides_world=True):
    world = [
        "world=collection",
        f"world.root={root}",
        "world.datasets.refcoco.refs='refcoco/refs(unc).json'",  # quoted: parentheses
        "world.datasets.refcoco_plus.ratio=0",  # one RefCOCO variant in the fixtures
        "world.datasets.refcocog.ratio=0",
    ]
    return compose_cfg(
        [
            *(world if overrides_world else []),
            f"paths.root_dir={tmp}",
            f"paths.cache_dir={tmp}/cache",
            f"paths.output_dir={tmp}/out",
            *extra,
        ]
    )


def materialize(cfg, folder: Path):
    from genixer.core.build import build

    world = build(cfg.world)
    return world, world.materialize(folder)


def test_collection_world_mixes_the_generic_datasets(compose_cfg, data_root, tmp_path):
    cfg = collection_cfg(compose_cfg, data_root, tmp_path)
    world, splits = materialize(cfg, tmp_path / "w")
    rows = list(read_jsonl(tmp_path / "w" / "samples.jsonl"))
    report = world.report["collection"]
    # generator=llava: only the generic-task datasets are read, every sample once
    assert report["task_counts"] == {"adv": 3, "common": 6, "mcvqa": 2, "md": 4}
    assert set(report["datasets"]) == {
        "vqav2:common",
        "vqav2:md",
        "gqa",
        "pope",
        "aokvqa",
        "llava_conv",
    }
    assert report["datasets"]["pope"]["skipped"]["image_path_escapes_root"] == 1
    ledger = list(read_jsonl(tmp_path / "w" / "skipped-collection.jsonl"))
    assert sum(r.get("records", 1) for r in ledger) == report["skipped_total"] > 0
    # images enter the world folder; the index and the samples agree
    ids = {i.id for i in splits["collection"]}
    assert {r["image_id"] for r in rows} == ids and not splits["pool"]
    for img in splits["collection"]:
        assert (tmp_path / "w" / img.path).is_file() and img.scene is None
    assert all(r["image"].startswith("images/collection/") for r in rows)
    # seeded: the same config gives the same bytes
    materialize(cfg, tmp_path / "w2")
    assert (tmp_path / "w2" / "samples.jsonl").read_bytes() == (
        tmp_path / "w" / "samples.jsonl"
    ).read_bytes()


def test_collection_world_sizes_and_ratios(compose_cfg, data_root, tmp_path):
    from omegaconf import OmegaConf

    from genixer.sources.collection import CollectionWorld

    cfg = collection_cfg(compose_cfg, data_root, tmp_path, "generator=shikra", "world.size=20")
    base = OmegaConf.to_container(cfg.world, resolve=True)
    base.pop("_target_")

    def world_with(**changes) -> CollectionWorld:
        kw = json.loads(json.dumps(base))
        for (
            key,
            value,
        ) in changes.items():  # "datasets__gqa__ratio" -> kw["datasets"]["gqa"]["ratio"]
            *path, last = key.split("__")
            node = kw
            for p in path:
                node = node[p]
            node[last] = value
        return CollectionWorld(**kw)

    world = world_with(datasets__vg__ratio={"rec": 2.0, "reg": 0})
    world.materialize(tmp_path / "w")
    report = world.report["collection"]
    drawn = {k: v["drawn"] for k, v in report["datasets"].items()}
    assert sum(drawn.values()) == report["samples"] == 20
    assert "vg:reg" not in drawn and drawn["vg:rec"] > drawn["refcoco:rec"]  # ratio 0: not read
    assert set(report["task_counts"]) <= {"rec", "reg", "pointqa", "qcbox", "rd"}

    generic = ["common", "adv", "mcvqa", "md"]
    world = world_with(size=None, tasks=generic, datasets__gqa__ratio=0.5, datasets__vqav2__ratio=2)
    world.materialize(tmp_path / "h")
    d = world.report["collection"]["datasets"]
    assert d["gqa"]["drawn"] == 1 and d["vqav2:common"]["drawn"] == 8

    for changes, message in [
        ({"datasets__gqa__questionz": "x"}, "unexpected argument"),
        ({"datasets__pope__task": "rec"}, "converts to"),
        ({"datasets__gqa__ratio": -1}, "ratio"),
        ({"tasks": generic, "datasets__gqa__questions": "gqa/missing.json"}, "does not exist"),
        ({"root": "/nonexistent/data"}, "not a folder"),
        ({"splits": {"pool": 3}}, "only the collection split"),
        ({"link": "symlink"}, "hardlink"),
    ]:
        with pytest.raises(ValueError, match=message):
            world_with(**changes).fingerprint()


def test_collection_world_feeds_the_generator(compose_cfg, data_root, tmp_path):
    """The pipeline's world and collect stages on converted data, through generator
    training (the tiny model, a few steps)."""
    from genixer.pipeline.runner import run_pipeline
    from genixer.world import read_index
    from tests.conftest import TINY_VLM

    cfg = collection_cfg(
        compose_cfg,
        data_root,
        tmp_path,
        "stop_after=train_generator",
        "generator.vision_pretrain=null",
        "generator.vocab_size=400",
        "generator.base_train.steps=1",
        "generator.base_train.batch_size=4",
        "generator.gen_train.steps=1",
        "generator.gen_train.batch_size=4",
        "trainer.enable_progress_bar=false",
        *TINY_VLM,
    )
    p = run_pipeline(cfg)
    info = p.results["collect"].info
    world = p.results["world"].path
    samples = list(read_jsonl(world / "samples.jsonl"))
    assert info["pairs"] == len(samples) == info["plain"] == 15
    assert info["task_counts"] == {"common": 6, "adv": 3, "mcvqa": 2, "md": 4}
    pairs = list(read_jsonl(p.results["pairs"].path / "pairs.jsonl"))
    assert {r["image_id"] for r in pairs} <= {i.id for i in read_index(world)["collection"]}
    assert any(
        r["target"].startswith("Question: What is the man by the bags awaiting?") for r in pairs
    )
    assert p.results["world"].info["collection"]["samples"] == 15
    assert (p.results["train_generator"].path / "model").is_dir()


def test_collection_under_folder_world(compose_cfg, data_root, tmp_path):
    """The paper's layout: the labeled collection from the datasets, the unlabeled pool from
    a folder of images (world=folder with world=collection as its base)."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, size in enumerate([(64, 48), (40, 40)]):
        Image.new("RGB", size, (i * 90, 60, 30)).save(pool / f"img{i}.jpg")
    cfg = collection_cfg(
        compose_cfg,
        data_root,
        tmp_path,
        "world=folder",
        f"world.images={pool}",
        "world@world.base=collection",
        f"world.base.root={data_root}",
        "world.base.datasets.refcoco.refs='refcoco/refs(unc).json'",
        "world.base.datasets.refcoco_plus.ratio=0",
        "world.base.datasets.refcocog.ratio=0",
        overrides_world=False,
    )
    world, splits = materialize(cfg, tmp_path / "w")
    assert len(splits["collection"]) > 0 and len(splits["pool"]) == 2
    samples = list(read_jsonl(tmp_path / "w" / "samples.jsonl"))
    assert {r["image_id"] for r in samples} == {i.id for i in splits["collection"]}
