"""Downstream data and benchmarks from files (issue 23): LLaVA-format training files streamed
by offset, length-grouped batches, the benchmarks' own files, the arms of a tiny run through
``world=folder`` on a ``world=collection`` base, and bad input refused or ledgered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genixer.config.check import ConfigError
from genixer.config.schema import check_config
from genixer.core.ledger import SkipLedger
from genixer.training.resume import ReplaySampler, length_grouped
from genixer.training.stream import index_file, pick, scan_records
from tests.conftest import CPU_TRAINER, TINY_VLM

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
N_IMAGES = 24


def conversation(q: str, a: str) -> list[dict]:
    return [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": a}]


def write_images(folder: Path) -> list[str]:
    """A few dozen small images of plain colours, at different sizes."""
    rs = np.random.RandomState(0)
    names = []
    for i in range(N_IMAGES):
        name = f"COCO_val2014_{i:012d}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        colour = tuple(int(c) for c in rs.randint(0, 255, 3))
        Image.new("RGB", (40 + 2 * i, 36), colour).save(folder / name)
        names.append(name)
    return names


def write_mix(path: Path, names: list[str]) -> None:
    """A tiny LLaVA mix: good records, and one of each kind of bad record."""
    records = [
        {"id": f"m{i}", "image": n, "conversations": conversation("What colour is it?", f"c{i}")}
        for i, n in enumerate(names[:16])
    ]
    records += [
        {"id": "text", "conversations": conversation("Hi?", "Hello.")},  # text-only
        {"id": "roles", "image": names[0], "conversations": conversation("a", "b")[::-1]},
        {"id": "gone", "image": "gone.jpg", "conversations": conversation("Where?", "Here.")},
        {"id": "broken", "image": "broken.jpg", "conversations": conversation("What?", "That.")},
    ]
    path.write_text(json.dumps(records, indent=1))


def write_benchmarks(root: Path, names: list[str]) -> dict[str, list[Path]]:
    """VQAv2 (questions + annotations), GQA, POPE and RefCOCO (Shikra's REC jsonl)."""
    qs = [{"question_id": i, "image_id": i, "question": "What colour?"} for i in range(4)]
    anns = [
        {"question_id": i, "answer_type": "other", "answers": [{"answer": "red"}] * 10}
        for i in range(4)
    ]
    vq, va = root / "vqav2_q.json", root / "vqav2_a.json"
    vq.write_text(json.dumps({"data_subtype": "val2014", "questions": qs}))
    va.write_text(json.dumps({"annotations": anns}))
    gqa = root / "testdev_balanced_questions.json"
    gqa.write_text(
        json.dumps(
            {
                str(k): {"imageId": names[k][:-4], "question": "Is it red?", "answer": "no"}
                for k in range(3)
            }
        )
    )
    pope = root / "coco_pope_random.json"
    rows = [
        {
            "question_id": k,
            "image": names[k],
            "text": "Is there a dog?",
            "label": "yes" if k % 2 else "no",
        }
        for k in range(4)
    ]
    pope.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rec = root / "REC_refcoco_unc_val.jsonl"
    rows = [
        {
            "img_path": names[k],
            "expression": "the thing",
            "bbox": [2, 2, 20, 20],
            "width": 40 + 2 * k,
            "height": 36,
        }
        for k in range(3)
    ] + [
        {"img_path": names[0], "expression": "bad", "bbox": [5, 5, 1, 1], "width": 40, "height": 36}
    ]
    rec.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {"vqav2": [vq, va], "gqa": [gqa], "pope": [pope], "rec": [rec]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("files")
    data = root / "data"  # the collection's datasets (the generator's training data)
    shutil.copytree(FIXTURES, data)
    for rel, (w, h) in json.loads((FIXTURES / "images.json").read_text()).items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (90, 120, 200)).save(data / rel)
    images = root / "images"
    names = write_images(images)
    (images / "broken.jpg").write_bytes(b"not an image")
    write_mix(root / "mix.json", names)
    pool = root / "pool"
    pool.mkdir()
    for n in names[16:20]:
        shutil.copyfile(images / n, pool / n)
    return {
        "root": root,
        "data": data,
        "images": images,
        "mix": root / "mix.json",
        "pool": pool,
        "bench": write_benchmarks(root, names),
    }


def test_scan_gives_byte_offsets_of_each_record_one_at_a_time(tmp_path):
    records = [{"id": i, "v": "é" * i} for i in range(5)]
    path = tmp_path / "x.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2))
    raw = path.read_bytes()
    found = list(scan_records(path))
    assert [v for _, _, v in found] == records
    assert all(json.loads(raw[o : o + n]) == v for o, n, v in found)
    lines = tmp_path / "x.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in records))
    assert [v for _, _, v in scan_records(lines)] == records
    path.write_text(json.dumps(records)[:-9])  # cut: the last record is a syntax error
    assert type(list(scan_records(path))[-1][2]).__name__ == "BadFileError"


def test_index_ledgers_bad_records_and_picks_are_seeded(files):
    ledger = SkipLedger("t")
    index = index_file(files["mix"], ledger)
    assert len(index) == 18  # 16 good + gone + broken (their images fail only when read)
    assert dict(ledger.counts) == {"no_image": 1, "bad_roles": 1}
    assert pick(5, seed=1).tolist() == [0, 1, 2, 3, 4]
    three = pick(10, seed=1, count=3)
    assert len(set(three.tolist())) == 3 and (three == pick(10, seed=1, count=3)).all()
    assert sorted(pick(4, seed=2, ratio=2.0).tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_length_grouped_batches_are_a_replayable_permutation():
    lengths = [int(x) for x in np.random.RandomState(0).randint(1, 500, 200)]
    order = list(range(200))
    grouped = length_grouped(order, lengths, 8, seed=3)
    assert sorted(grouped) == order and grouped == length_grouped(order, lengths, 8, seed=3)
    spread = np.mean([np.ptp([lengths[i] for i in grouped[k : k + 8]]) for k in range(0, 200, 8)])
    assert spread < 0.5 * np.ptp(lengths)  # batches of similar lengths
    s = ReplaySampler(200, 5, batch_size=8, lengths=lengths)
    first, second = list(s), list(s)
    s.start_at(1, 16)  # a restored run: epoch 1, two batches done
    assert list(s) == second[16:] and first != second


def pipeline_overrides(files: dict, tmp: Path, *extra: str) -> list[str]:
    b = files["bench"]
    bench = (
        f"[{{benchmark:vqav2,annotations:[{b['vqav2'][0]},{b['vqav2'][1]}],images:{files['images']}}},"
        f"{{benchmark:gqa,annotations:[{b['gqa'][0]}],images:{files['images']}}},"
        f"{{benchmark:pope,annotations:[{b['pope'][0]}],images:{files['images']}}},"
        f"{{benchmark:rec,name:refcoco_val,annotations:[{b['rec'][0]}],images:{files['images']},"
        "max_new_tokens:8}]"
    )
    return [
        "world=folder",
        f"world.images={files['pool']}",
        "world@world.base=collection",
        f"world.base.root={files['data']}",
        "world.base.datasets.refcoco.refs='refcoco/refs(unc).json'",
        "world.base.datasets.refcoco_plus.ratio=0",
        "world.base.datasets.refcocog.ratio=0",
        "filter=none",
        f"paths.root_dir={tmp}",
        f"paths.cache_dir={tmp}/cache",
        f"paths.output_dir={tmp}/out",
        "generator.vision_pretrain=null",
        "generator.vocab_size=400",
        "generator.base_train.steps=1",
        "generator.base_train.batch_size=4",
        "generator.gen_train.steps=1",
        "generator.gen_train.batch_size=4",
        "generate.per_image=1",
        "generate.max_new_tokens=6",
        "trainer.enable_progress_bar=false",
        "downstream.pretrain=[{steps:1,batch_size:4,lr:1e-3,trainable:projector,warmup_ratio:0.0}]",
        "downstream.finetune.steps=3",
        "downstream.finetune.batch_size=4",
        "+downstream.finetune.group_by_length=true",
        f"downstream.pretrain_data=[{{export:true}},{{file:{files['mix']},images:{files['images']},count:6}}]",
        f"downstream.finetune_data=[{{file:{files['mix']},images:{files['images']}}},{{export:true,count:4}}]",
        f"downstream.benchmarks={bench}",
        "downstream.eval.max_new_tokens=4",
        *TINY_VLM,
        *extra,
    ]


def test_tiny_run_trains_both_arms_on_files_and_scores_each_benchmark(compose_cfg, files, tmp_path):
    from genixer.pipeline.runner import run_pipeline

    p = run_pipeline(compose_cfg(pipeline_overrides(files, tmp_path)))
    d = p.summary["downstream"]
    assert set(d["benchmarks"]) == {"vqav2", "gqa", "pope", "refcoco_val"}
    for name, row in d["benchmarks"].items():
        assert 0.0 <= row["baseline"] <= 1.0 and 0.0 <= row["synthetic"] <= 1.0, name
        if d["synthetic_records"]:
            assert row["gain"] == round(row["synthetic"] - row["baseline"], 4)
        else:  # nothing exported: the synthetic arm is the baseline, no gain
            assert row["gain"] is None
    assert d["accuracy"] == d["benchmarks"]["vqav2"]["synthetic"]  # the first benchmark's
    base = p.results["downstream_baseline"]
    assert base.info["finetune"]["examples"] == 18
    # a missing and a corrupt image are ledgered when read, the text-only and bad-roles
    # records when indexed; the bad REC box when the benchmark is loaded
    by_stage = p.summary["skipped"]["by_stage"]["downstream_baseline"]
    assert {"no_image", "bad_roles", "image_missing", "image_not_an_image", "bad_box"} <= set(
        by_stage
    )
    assert "pretrain_0" in base.info  # the file entry of pretrain_data: both arms
    for arm in ("baseline", "synthetic"):
        folder = p.results[f"downstream_{arm}"].path / "benchmarks" / "gqa"
        assert len((folder / "answers.jsonl").read_text().splitlines()) == 3

    # the baseline holds nothing of generation or filtering: re-used when those change
    again = run_pipeline(
        compose_cfg(pipeline_overrides(files, tmp_path, "generate.max_new_tokens=5"))
    )
    assert again.results["downstream_baseline"].status == "reused"
    assert again.results["generate"].status == "ran"
    skip = run_pipeline(
        compose_cfg(pipeline_overrides(files, tmp_path, "downstream.baseline=false"))
    )
    assert "downstream_baseline" not in skip.results
    assert all(
        r["gain"] is None and r["baseline"] is None
        for r in skip.summary["downstream"]["benchmarks"].values()
    )


@pytest.mark.parametrize(
    ("override", "key", "message"),
    [
        (
            "downstream.finetune_data=[{file:/nope/mix.json,images:IMAGES}]",
            "finetune_data[0].file",
            "no file",
        ),
        (
            "downstream.finetune_data=[{file:VQA,images:IMAGES}]",
            "finetune_data[0].file",
            "not LLaVA's",
        ),
        (
            "downstream.pretrain_data=[{file:MIX,images:/nope}]",
            "pretrain_data[0].images",
            "no image folder",
        ),
        (
            "downstream.benchmarks=[{benchmark:mme,annotations:[MIX],images:IMAGES}]",
            "benchmarks[0].benchmark",
            "no loader",
        ),
        (
            "downstream.benchmarks=[{benchmark:gqa,annotations:[/nope/q.json],images:IMAGES}]",
            "benchmarks[0].annotations[0]",
            "no file",
        ),
        (
            "downstream.finetune_data=[{world:downstream}]",
            "finetune_data[0].world",
            "no 'downstream' images",
        ),
    ],
)
def test_bad_downstream_input_is_refused_naming_key_and_file(
    compose_cfg, files, tmp_path, override, key, message
):
    override = (
        override.replace("IMAGES", str(files["images"]))
        .replace("MIX", str(files["mix"]))
        .replace("VQA", str(files["bench"]["vqav2"][0]))
    )
    cfg = compose_cfg([*pipeline_overrides(files, tmp_path), override])
    with pytest.raises(ConfigError, match=message) as err:
        check_config(cfg)
    assert f"downstream.{key}" in str(err.value)


def test_a_checkpoint_starts_the_model_with_a_fresh_projector(compose_cfg, files, tmp_path):
    """``downstream.checkpoint``: the language model and vision tower of a converted folder,
    its own tokenizer, the projector initialised anew (seeded)."""
    import torch

    from genixer.models.llava.model import build_vlm, save_vlm
    from genixer.models.tokenizer import build_tokenizer
    from genixer.pipeline.downstream_model import downstream_model
    from genixer.pipeline.runner import make_context
    from tests.conftest import TINY_VLM_SPEC

    tok = build_tokenizer(["What colour is it? red green"] * 3, 300)
    src = build_vlm(TINY_VLM_SPEC, tok)
    save_vlm(src, tmp_path / "ckpt")
    tok.save_pretrained(str(tmp_path / "ckpt"))
    cfg = compose_cfg(
        [*pipeline_overrides(files, tmp_path), f"downstream.checkpoint={tmp_path / 'ckpt'}"]
    )
    check_config(cfg)
    model, processor = downstream_model(make_context(cfg), {}, 0)
    new, old = model.state_dict(), src.state_dict()
    for name, value in old.items():
        same = torch.equal(new[name], value)
        assert same != ("multi_modal_projector" in name and name.endswith("weight")), name
    again, _ = downstream_model(make_context(cfg), {}, 0)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in new.items())
    assert processor.tokenizer.get_vocab() == tok.get_vocab()


def test_the_sweep_report_tables_and_plots_each_benchmark(tmp_path):
    from genixer.runs.report import markdown
    from genixer.runs.report_benchmarks import plot_benchmarks
    from genixer.runs.sweep_jobs import Job, group

    def job(i: int, threshold: str, seed: str, gqa: float) -> Job:
        m = {"downstream.accuracy": gqa, "wall_seconds": 5.0}
        for name, syn in (("gqa", gqa), ("pope", 0.8)):
            m |= {
                f"downstream.benchmarks.{name}.{k}": v
                for k, v in (("baseline", 0.5), ("synthetic", syn), ("gain", round(syn - 0.5, 4)))
            }
        ov = {"filter.threshold": threshold, "downstream.seed": seed}
        return Job(f"r{i}", f"job{i}", "FINISHED", ov, m)

    jobs = [job(0, "0.5", "0", 0.6), job(1, "0.5", "1", 0.7), job(2, "0.7", "0", 0.9)]
    settings, _ = group(jobs)
    text = markdown("t", "p", "sqlite://", settings, jobs)
    assert "## Benchmark: gqa" in text and "## Benchmark: pope" in text
    assert "| filter.threshold=0.5 | 0.500 ± 0.000 | 0.650 ± 0.071 | 0.150 ± 0.071 |" in text
    assert "| filter.threshold=0.7 | 0.500 | 0.900 | 0.400 |" in text
    path = plot_benchmarks(settings, jobs, tmp_path / "b.png")
    assert path.stat().st_size > 5000
    assert (
        plot_benchmarks(settings, [Job("r", "j", "FINISHED", {}, {})], tmp_path / "c.png") is None
    )
    # the built-in world's benchmark alone is the main table's: no extra table or figure
    world_only = [Job("r", "j", "FINISHED", {}, {"downstream.benchmarks.world.synthetic": 0.5})]
    assert plot_benchmarks(settings, world_only, tmp_path / "d.png") is None


class Interrupted(RuntimeError):
    pass


def test_streamed_length_grouped_training_resumes_to_the_uninterrupted_weights(files, tmp_path):
    """A run killed mid-way over a streamed file (bad records in it) re-runs from its last
    checkpoint and ends with the weights of a run that was never interrupted."""
    import torch

    from genixer.models import build_tokenizer, build_vlm, processor_for
    from genixer.training.fit import fit
    from genixer.training.stream import MixedDataset, StreamedFile
    from tests.conftest import TINY_VLM_SPEC

    spec = TINY_VLM_SPEC | {"max_position_embeddings": 128}
    tok = build_tokenizer([f"What colour is it? c{i}" for i in range(16)] * 3, vocab_size=300)
    proc = processor_for(build_vlm(spec, tok), tok)
    index = index_file(files["mix"], SkipLedger("t"))

    class Killed(MixedDataset):
        fetches = 0

        def __getitem__(self, i):
            Killed.fetches += 1
            if Killed.fetches > 4 * 4:  # during the 5th batch
                raise Interrupted("killed")
            return super().__getitem__(i)

    def data(cls=MixedDataset):
        part = StreamedFile(files["mix"], files["images"], index, pick(len(index), seed=0))
        return cls([part], proc.encode, SkipLedger("t"))

    trainer = CPU_TRAINER  # precision 32-true: the CPU's default
    train = {
        "steps": 7,
        "batch_size": 4,
        "lr": 1e-3,
        "warmup_ratio": 0.0,
        "trainable": "all",
        "group_by_length": True,
    }
    run = {"train": train, "trainer_cfg": trainer, "seed": 1}

    def model():
        torch.manual_seed(0)
        return build_vlm(spec, tok)

    log_dir = tmp_path / "stage" / "logs"
    with pytest.raises(Interrupted):
        fit(model(), data(Killed), proc.collate, **run, log_dir=log_dir, checkpoint_every=2)
    resumed = model()
    streamed = data()
    info = fit(resumed, streamed, proc.collate, **run, log_dir=log_dir, checkpoint_every=2)
    assert info["resumed_from_step"] == 4 and info["steps"] == 7
    assert info["examples"] == 18 and info["skipped"] == {
        "image_missing": 1,
        "image_not_an_image": 1,
    }
    straight = model()
    fit(straight, data(), proc.collate, **run, log_dir=tmp_path / "ref" / "logs")
    a, b = resumed.state_dict(), straight.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_export_streamed_trains_as_the_export_encoded_up_front(tmp_path):
    """The synthetic arm reads the run's export like any file now: the same examples in the
    same order, so the built-in world's numbers stay what they were (weights equal)."""
    import torch

    from genixer.models import build_tokenizer, build_vlm, processor_for
    from genixer.pipeline.stages.export import LLAVA_JSON, export_llava, read_llava
    from genixer.sources.shapes import ShapesWorld
    from genixer.training.data import EncodedDataset
    from genixer.training.fit import fit
    from genixer.training.stream import MixedDataset, StreamedFile
    from tests.conftest import TINY_VLM_SPEC, truth_records

    world = tmp_path / "world"
    splits = ShapesWorld(seed=0, splits={"pool": 10}).materialize(world)
    records = truth_records(splits["pool"])
    export_llava(records, world, tmp_path / "export")
    entries = read_llava(tmp_path / "export" / LLAVA_JSON)
    tok = build_tokenizer([q + " " + a for _, _, t in entries for q, a in t] * 2, 300)
    spec = TINY_VLM_SPEC | {"image_size": 48, "max_position_embeddings": 512}
    proc = processor_for(build_vlm(spec, tok), tok)
    by_id = {i.id: i for i in splits["pool"]}
    before = EncodedDataset(
        [(by_id[Path(img).stem], turns) for _, img, turns in entries], proc.encode, world
    )
    index = index_file(tmp_path / "export" / LLAVA_JSON, SkipLedger("t"))
    part = StreamedFile(
        tmp_path / "export" / LLAVA_JSON,
        tmp_path / "export" / "images",
        index,
        pick(len(index), seed=0),
    )
    now = MixedDataset([part], proc.encode, SkipLedger("t"))
    trainer = CPU_TRAINER  # precision 32-true: the CPU's default
    train = {"steps": 3, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "trainable": "all"}
    weights = []
    for i, data in enumerate((before, now)):
        torch.manual_seed(0)
        model = build_vlm(spec, tok)
        fit(
            model,
            data,
            proc.collate,
            train=train,
            trainer_cfg=trainer,
            seed=1,
            log_dir=tmp_path / f"r{i}" / "logs",
        )
        weights.append(model.state_dict())
    assert len(before) == len(now) == 10
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
