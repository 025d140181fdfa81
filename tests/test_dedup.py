"""Dedup of generated samples (same image, across the corpus) and decontamination of the pool
against a benchmark's images."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from genixer.core.record import QA, Record, read_records
from genixer.pipeline.stages import decontaminate as DC
from genixer.pipeline.stages import dedup as DD
from genixer.sources.shapes import ShapesWorld


def rec(rid: str, image: str, *turns: tuple, task: str = "common") -> Record:
    qas = [QA(q, a, list(o) if o else None) for q, a, *o in turns]
    return Record(rid, image, f"images/pool/{image}.png", task, task, qas, "")


def test_normalization_ignores_case_punctuation_articles_and_number_words_not_boxes():
    a = DD.qa_key([QA("How many Circles are there?", "Two.")])
    b = DD.qa_key([QA("how many circles are there", "2")])
    assert a == b
    assert DD.qa_key([QA("What is the shape?", "a square")]) == DD.qa_key(
        [QA("What is the shape", "square")]
    )
    # box numbers are kept verbatim (no punctuation rules inside brackets)
    box1 = DD.qa_key([QA("Where is the red circle?", "[0.125,0.250,0.500,0.750]")])
    box2 = DD.qa_key([QA("Where is the red circle?", "[0.125, 0.250, 0.500, 0.750]")])
    box3 = DD.qa_key([QA("Where is the red circle?", "[0.125,0.250,0.500,0.751]")])
    assert box1 == box2 != box3
    # options are part of a multiple-choice sample; the answer letter too
    mc = [QA("Which color?", "A", ["red", "blue"])]
    assert DD.qa_key(mc) != DD.qa_key([QA("Which color?", "A", ["blue", "red"])])
    assert DD.qa_key(mc) != DD.qa_key([QA("Which color?", "B", ["red", "blue"])])
    # a dialogue is one sample: its turns in order
    t1, t2 = QA("Is it red?", "Yes"), QA("Is it big?", "No")
    assert DD.qa_key([t1, t2]) != DD.qa_key([t2, t1])


def test_same_image_repeats_are_dropped_and_counted_independently_of_order():
    records = [
        rec("r1", "img1", ("How many circles?", "2")),
        rec("r2", "img1", ("how many circles", "two")),  # same sample, same image
        rec("r3", "img2", ("How many circles?", "2")),  # same sample, another image
        rec("r4", "img1", ("How many squares?", "2")),
        rec("r0", "img3", ("Is there a dog?", "Yes"), ("Is it red?", "No"), task="md"),
        rec("r5", "img3", ("Is there a dog?", "yes"), ("is it red", "no"), task="md"),
    ]
    kept, ledger = DD.dedup(records)
    assert [r.id for r in kept] == ["r0", "r1", "r3", "r4"]
    assert ledger.counts == {"duplicate_same_image": 2}
    assert {r["id"]: r["duplicate_of"] for r in ledger.rows} == {"r2": "r1", "r5": "r0"}
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    again, _ = DD.dedup(shuffled)
    assert [r.id for r in again] == [r.id for r in kept]
    # off: everything stays
    assert len(DD.dedup(records, same_image=False)[0]) == len(records)


def test_corpus_cap_limits_how_many_images_share_one_sample():
    records = [rec(f"r{i}", f"img{i}", ("Is there a circle?", "Yes")) for i in range(5)]
    records.append(rec("r9", "img0", ("Is there a circle?", "yes")))
    kept, ledger = DD.dedup(records, corpus_max=2)
    assert [r.id for r in kept] == ["r0", "r1"]
    assert ledger.counts == {"duplicate_corpus": 3, "duplicate_same_image": 1}
    assert all(r["duplicate_of"] == "r0" for r in ledger.rows)
    with pytest.raises(ValueError, match="corpus_max"):
        DD.dedup(records, corpus_max=0)


def test_dedup_stage_writes_kept_records_and_the_ledger(tmp_path):
    records = [rec("a", "i", ("Q?", "x")), rec("b", "i", ("q", "X."))]
    info = DD.run_dedup(records, tmp_path, True, None)
    assert info == {"num_input": 2, "num_records": 1, "duplicates": {"same_image": 1, "corpus": 0}}
    assert [r.id for r in read_records(tmp_path / DD.RECORDS)] == ["a"]
    (row,) = [json.loads(x) for x in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert row == {
        "stage": "dedup",
        "reason": "duplicate_same_image",
        "id": "b",
        "image_id": "i",
        "duplicate_of": "a",
    }


def test_decontamination_excludes_pool_images_found_in_a_benchmark(tmp_path):
    world = ShapesWorld(seed=0, splits={"pool": 6, "benchmark": 2})
    splits = world.materialize(tmp_path / "w")
    pool = splits["pool"]
    bench = tmp_path / "bench"
    (bench / "imgs").mkdir(parents=True)
    # two pool images copied under other names (a benchmark that shares images with the
    # pool), one benchmark image of its own, and a question file naming them
    shutil.copyfile(tmp_path / "w" / pool[1].path, bench / "imgs" / "q1.png")
    shutil.copyfile(tmp_path / "w" / pool[4].path, bench / "imgs" / "q2.png")
    shutil.copyfile(tmp_path / "w" / splits["benchmark"][0].path, bench / "imgs" / "q3.png")
    questions = [
        {"question_id": 1, "image": "imgs/q1.png", "text": "?"},
        {"question_id": 2, "image": "imgs/q1.png", "text": "?"},  # one image, two questions
        {"question_id": 3, "image": "imgs/q2.png", "text": "?"},
        {"question_id": 4, "image": "imgs/q3.png", "text": "?"},
        {"question_id": 5, "image": "imgs/gone.png", "text": "?"},
    ]
    (bench / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    specs = DC.benchmark_specs(str(bench / "questions.jsonl"))
    assert specs == [{"images": str(bench / "questions.jsonl"), "image_root": str(bench)}]
    out = tmp_path / "stage"
    out.mkdir()
    info = DC.decontaminate(specs, tmp_path / "w", pool, out)
    assert DC.excluded_ids(out) == {pool[1].id, pool[4].id}
    assert info["excluded"] == 2 and info["pool_checked"] == 6
    assert info["distinct_benchmark_images"] == 3
    assert info["skipped"] == {"benchmark_overlap": 2, "benchmark_missing": 1}
    # a folder of benchmark images works the same; several benchmarks at once too
    specs2 = DC.benchmark_specs([str(bench / "imgs"), {"images": str(bench / "questions.jsonl")}])
    out2 = tmp_path / "stage2"
    out2.mkdir()
    DC.decontaminate(specs2, tmp_path / "w", pool, out2)
    assert DC.excluded_ids(out2) == {pool[1].id, pool[4].id}
    # the stage key follows the benchmark's files
    before = DC.benchmark_fingerprint(specs)
    (bench / "imgs" / "q3.png").write_bytes((tmp_path / "w" / pool[0].path).read_bytes())
    assert DC.benchmark_fingerprint(specs) != before
    assert DC.benchmark_specs(None) == [] and DC.benchmark_specs([]) == []
    with pytest.raises(ValueError, match="does not exist"):
        DC.benchmark_specs(str(tmp_path / "nope"))


def test_the_dedup_cache_key_follows_the_answer_normalization(monkeypatch):
    before = DD.normalization_fingerprint()
    assert DD.normalization_fingerprint() == before
    monkeypatch.setattr(DD, "normalize_answer", lambda text: text.lower().strip())
    assert DD.normalization_fingerprint() != before
