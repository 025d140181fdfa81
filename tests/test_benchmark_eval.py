"""Benchmark evaluation: the official VQA normalization and soft accuracy against hand-computed
values, every benchmark runner on a tiny file written by hand in that benchmark's own format,
and ``python -m genixer.evaluate`` end to end on a tiny random model."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from genixer.evaluate import main as evaluate_main
from genixer.evaluation import extract_yes_no, normalize_answer, vqa_accuracy
from genixer.evaluation.benchmarks import load_benchmark
from genixer.evaluation.runner import read_answers, score, write_questions

# ----------------------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # articles (whole words only)
        ("A dog", "dog"),
        ("the cat on an apple", "cat on apple"),
        ("another theme", "another theme"),
        # number words: zero..ten, as the official table (eleven stays a word)
        ("Two", "2"),
        ("none", "0"),
        ("ten dogs", "10 dogs"),
        ("eleven", "eleven"),
        # punctuation: a mark touching a space is deleted, otherwise it becomes a space
        ("t-shirt", "t shirt"),
        ("hello, world", "hello world"),
        ("left-right - up", "leftright up"),  # " - " touches spaces: every "-" deleted
        ("yes!", "yes"),
        ("(red)", "red"),
        # a comma between digits deletes every mark of the text
        ("1,000", "1000"),
        ("1,000 t-shirts", "1000 tshirts"),
        # periods go unless a digit follows
        ("dog.", "dog"),
        ("3.5", "3.5"),
        ("e.g", "eg"),
        # contractions restored; the apostrophe is not punctuation; ordinary words kept
        ("dont", "don't"),
        ("youre right", "you're right"),
        ("it's", "it's"),
        ("its", "its"),
        ("\tYes \n", "yes"),
    ],
)
def test_official_normalization(raw, expected):
    assert normalize_answer(raw) == expected


def test_vqa_accuracy_hand_computed():
    ten = ["down"] * 2 + ["up"] * 8
    # leave out one of the 2 matches (2 subsets): 1/3; leave out a non-match (8 subsets): 2/3
    assert vqa_accuracy("down", ten) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_accuracy("up", ten) == pytest.approx(1.0)  # 8 matches: >= 3 in every subset
    three = ["2"] * 3 + ["3"] * 7  # (3 x 2/3 + 7 x 1) / 10
    assert vqa_accuracy("Two.", three) == pytest.approx(0.9)  # normalized: number word, period
    assert vqa_accuracy("the 2", ["two", "2", "a 2", "2!", "3", "3", "3", "3", "3", "3"]) == 1.0
    assert vqa_accuracy("dont know", ["don't know"] * 10) == 1.0
    assert vqa_accuracy("t shirt", ["t-shirt"] * 10) == 1.0
    assert vqa_accuracy("nothing", ten) == 0.0


def test_pope_reading_is_the_official_one():
    assert extract_yes_no("No, there is not.", "pope") == "no"
    assert extract_yes_no("There is not a dog.", "pope") == "no"
    assert extract_yes_no("Yes. No.", "pope") == "yes"  # only the first sentence counts
    assert extract_yes_no("There is a dog", "pope") == "yes"  # never says no
    assert extract_yes_no("Nope", "pope") == "yes"
    with pytest.raises(ValueError):
        extract_yes_no("yes", "vote")


# ----------------------------------------------------------------------------- runners


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _answers(path: Path, pairs: dict) -> dict[str, str]:
    _jsonl(path, [{"question_id": q, "prompt": "", "text": t} for q, t in pairs.items()])
    answers, skipped = read_answers(path)
    assert not skipped
    return answers


def _ten(answer_counts: dict[str, int]) -> list[dict]:
    out = [a for a, n in answer_counts.items() for _ in range(n)]
    assert len(out) == 10
    return [
        {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(out)
    ]


def test_vqav2_questions_and_annotations(tmp_path):
    questions = {
        "info": {},
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "data_subtype": "val2014",
        "license": {},
        "questions": [
            {"image_id": 262148, "question": "Where is he looking?", "question_id": 262148000},
            {
                "image_id": 262148,
                "question": "What are the people in the background doing?",
                "question_id": 262148001,
            },
            {"image_id": 393225, "question": "How many?", "question_id": 393225000},
            {"image_id": 393225, "question": "Dup?", "question_id": 393225000},
            {"image_id": 393225, "question_id": 393225001},  # no question text
        ],
    }
    annotations = {
        "info": {},
        "license": {},
        "data_subtype": "val2014",
        "annotations": [
            {
                "question_type": "none of the above",
                "multiple_choice_answer": "down",
                "answers": _ten({"down": 7, "at table": 3}),
                "image_id": 262148,
                "answer_type": "other",
                "question_id": 262148000,
            },
            {
                "question_type": "what are the",
                "multiple_choice_answer": "watching",
                "answers": _ten({"watching": 2, "spectating": 8}),
                "image_id": 262148,
                "answer_type": "other",
                "question_id": 262148001,
            },
            {
                "question_type": "how many",
                "multiple_choice_answer": "2",
                "answers": _ten({"2": 10}),
                "image_id": 393225,
                "answer_type": "number",
                "question_id": 393225000,
            },
        ],
    }
    q = _write(tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json", questions)
    a = _write(tmp_path / "v2_mscoco_val2014_annotations.json", annotations)
    items, ledger = load_benchmark("vqav2", [q, a])
    assert ledger.counts == {"duplicate_question_id": 1, "missing_field": 1}
    assert items["262148000"].image == "COCO_val2014_000000262148.jpg"
    assert items["262148000"].prompt.endswith("Answer the question using a single word or phrase.")
    answers = _answers(tmp_path / "ans.jsonl", {262148000: "Down.", 262148001: "watching"})
    m = score("vqav2", items, answers)
    # 1.0 (7 matches), 0.6 (2 matches, hand-computed above), 0 (no answer)
    assert m["accuracy"] == pytest.approx((1.0 + 0.6 + 0.0) / 3)
    assert m["per_category"] == {"number": 0.0, "other": pytest.approx(0.8)}
    assert (m["questions"], m["answered"], m["missing_answers"]) == (3, 2, 1)


def test_vizwiz_and_textvqa(tmp_path):
    vizwiz = [
        {
            "image": "VizWiz_val_00000000.jpg",
            "question": "What is this?",
            "answers": _ten({"unanswerable": 6, "basil": 4}),
            "answer_type": "unanswerable",
            "answerable": 0,
        },
        {
            "image": "VizWiz_val_00000001.jpg",
            "question": "What color is this?",
            "answers": _ten({"blue": 10}),
            "answer_type": "other",
            "answerable": 1,
        },
    ]
    items, _ = load_benchmark("vizwiz", [_write(tmp_path / "val.json", vizwiz)])
    assert "respond with 'Unanswerable'" in items["VizWiz_val_00000000.jpg"].prompt
    answers = _answers(
        tmp_path / "a.jsonl",
        {"VizWiz_val_00000000.jpg": "Unanswerable", "VizWiz_val_00000001.jpg": "light blue"},
    )
    assert score("vizwiz", items, answers)["accuracy"] == pytest.approx(0.5)

    textvqa = {
        "dataset_type": "val",
        "dataset_name": "textvqa",
        "dataset_version": "0.5.1",
        "data": [
            {
                "question": "what is the brand of phone?",
                "image_id": "0054c91397f2fe05",
                "image_classes": ["Mobile phone"],
                "image_width": 1024,
                "image_height": 730,
                "answers": ["nokia"] * 9 + ["nokia phone"],
                "question_tokens": ["what"],
                "question_id": 34602,
                "set_name": "val",
            },
        ],
    }
    items, _ = load_benchmark("textvqa", [_write(tmp_path / "TextVQA_0.5.1_val.json", textvqa)])
    assert items["34602"].image == "0054c91397f2fe05.jpg"
    answers = _answers(tmp_path / "t.jsonl", {34602: "Nokia"})
    assert score("textvqa", items, answers)["accuracy"] == pytest.approx(1.0)


def test_gqa_exact_match(tmp_path):
    gqa = {
        "201307251": {
            "semantic": [],
            "entailed": [],
            "equivalent": ["201307251"],
            "question": "Is it overcast?",
            "imageId": "n161313",
            "isBalanced": True,
            "groups": {"global": None, "local": "06-weather"},
            "answer": "no",
            "semanticStr": "select: weather",
            "annotations": {},
            "types": {"detailed": "weather", "semantic": "global", "structural": "verify"},
            "fullAnswer": "No, it is clear.",
        },
        "201640614": {
            "question": "Who is wearing the dress?",
            "imageId": "n235859",
            "answer": "woman",
            "types": {"structural": "query"},
            "fullAnswer": "x",
        },
        "201640615": {"question": "No image id?", "answer": "x"},
    }
    items, ledger = load_benchmark(
        "gqa", [_write(tmp_path / "testdev_balanced_questions.json", gqa)]
    )
    assert ledger.counts == {"missing_field": 1}
    answers = _answers(tmp_path / "a.jsonl", {"201307251": "No", "201640614": "the man"})
    m = score("gqa", items, answers)
    assert m["accuracy"] == 0.5 and m["per_category"] == {"query": 0.0, "verify": 1.0}


def test_pope_files_and_metrics(tmp_path):
    rows = [
        {
            "question_id": 1,
            "image": "COCO_val2014_000000310196.jpg",
            "text": "Is there a snowboard in the image?",
            "label": "yes",
        },
        {
            "question_id": 2,
            "image": "COCO_val2014_000000310196.jpg",
            "text": "Is there a dog in the image?",
            "label": "no",
        },
        {
            "question_id": 3,
            "image": "COCO_val2014_000000210789.jpg",
            "text": "Is there a person in the image?",
            "label": "yes",
        },
        {
            "question_id": 4,
            "image": "COCO_val2014_000000210789.jpg",
            "text": "Is there a car in the image?",
            "label": "maybe",
        },
    ]
    adv = _jsonl(tmp_path / "coco_pope_adversarial.json", rows)
    rnd = _jsonl(tmp_path / "coco_pope_random.json", rows[:2])
    items, ledger = load_benchmark("pope", [adv, rnd])
    assert ledger.counts == {"bad_label": 1}
    assert sorted(items) == [
        "adversarial:1",
        "adversarial:2",
        "adversarial:3",
        "random:1",
        "random:2",
    ]
    answers = _answers(
        tmp_path / "a.jsonl",
        {
            "adversarial:1": "Yes, there is.",
            "adversarial:2": "Yes.",
            "adversarial:3": "No.",
            "random:1": "There is a snowboard.",
            "random:2": "There is no dog.",
        },
    )
    m = score("pope", items, answers)
    # read as yes, yes, no | yes, no: tp=2 (adv1, rnd1), fp=1 (adv2), fn=1 (adv3), tn=1 (rnd2)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(3 / 5)
    assert m["per_category"]["random"]["accuracy"] == 1.0
    assert m["per_category"]["adversarial"]["accuracy"] == pytest.approx(1 / 3)


def _png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_multiple_choice_benchmarks(tmp_path):
    problems = {
        "5": {
            "question": "Which of these states is farthest north?",
            "choices": ["West Virginia", "Louisiana", "Arizona", "Oklahoma"],
            "answer": 0,
            "hint": "",
            "image": "image.png",
            "task": "closed choice",
            "grade": "grade2",
            "subject": "social science",
            "topic": "geography",
            "category": "Geography",
            "skill": "Read a map",
            "lecture": "",
            "solution": "",
            "split": "test",
        },
        "6": {
            "question": "Which word would you find on a dictionary page?",
            "choices": ["shark", "summer"],
            "answer": 1,
            "hint": "",
            "image": None,
            "subject": "language science",
            "split": "test",
        },
        "7": {
            "question": "Which animal's feet are also adapted for walking on snow?",
            "choices": ["camel", "Eurasian lynx", "fox"],
            "answer": 1,
            "hint": "Snowshoe hares live in cold places.",
            "image": "image.png",
            "subject": "natural science",
            "split": "test",
        },
        "8": {
            "question": "Train?",
            "choices": ["a", "b"],
            "answer": 0,
            "image": "image.png",
            "split": "train",
        },
    }
    items, ledger = load_benchmark("scienceqa", [_write(tmp_path / "problems.json", problems)])
    assert sorted(items) == ["5", "7"] and ledger.counts == {"no_image": 1}
    assert items["7"].prompt.startswith("Context: Snowshoe hares live in cold places.\n")
    assert "C. fox\nAnswer with the option's letter" in items["7"].prompt
    assert items["7"].image == "test/7/image.png" and items["7"].truth == "B"
    answers = _answers(tmp_path / "s.jsonl", {"5": "A", "7": "The answer is C."})
    assert score("scienceqa", items, answers)["accuracy"] == 0.5

    img = _png_b64()
    header = "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\timage\tsource\tl2-category\tcomment\tsplit"
    tsv = "\n".join(
        [
            header,
            f"241\tWhat is the main color?\tnan\tred\tgreen\tblue\tnan\tA\tattribute_recognition\t{img}\tx\tfine\tnan\tdev",
            f"242\tIs it a cat?\tThe picture is small.\tyes\tno\tnan\tnan\tB\timage_topic\t{img}\tx\tcoarse\tnan\tdev",
            f"243\tBroken?\tnan\tonly one\tnan\tnan\tnan\tA\timage_topic\t{img}\tx\tcoarse\tnan\tdev",
            "244\tBad image?\tnan\tyes\tno\tnan\tnan\tA\timage_topic\tnot-base64!\tx\tcoarse\tnan\tdev",
        ]
    )
    items, ledger = load_benchmark("mmbench", [_write(tmp_path / "MMBench_DEV_EN.tsv", tsv)])
    assert sorted(items) == ["241", "242", "244"] and ledger.counts == {"too_few_options": 1}
    assert items["242"].prompt.startswith("The picture is small.\nIs it a cat?\nA. yes\nB. no\n")
    counts = write_questions(items, tmp_path / "mmb.jsonl", tmp_path / "mmb_images")
    assert counts["questions"] == 2 and counts["skipped"] == {"bad_inline_image": 1}
    assert Image.open(tmp_path / "mmb_images" / "241.jpg").size == (8, 6)
    answers = _answers(tmp_path / "m.jsonl", {"241": "A. red", "242": "(A)", "244": "A"})
    m = score("mmbench", items, answers)
    assert m["accuracy"] == pytest.approx(2 / 3)

    seed = {
        "questions": [
            {
                "answer": "A",
                "choice_a": "sunny",
                "choice_b": "rainy",
                "choice_c": "snowy",
                "choice_d": "foggy",
                "data_id": "1454426_2591111986.jpg",
                "data_type": "image",
                "question": "What is the weather?",
                "question_id": "101669",
                "question_type_id": 1,
            },
            {
                "answer": "B",
                "choice_a": "x",
                "choice_b": "y",
                "choice_c": "z",
                "choice_d": "w",
                "data_id": "v.mp4",
                "data_type": "video",
                "question": "Action?",
                "question_id": "900001",
                "question_type_id": 10,
            },
        ],
        "question_type": {"Scene Understanding": 1, "Action Recognition": 10},
    }
    items, ledger = load_benchmark("seed", [_write(tmp_path / "SEED-Bench.json", seed)])
    assert list(items) == ["101669"] and ledger.counts == {"video": 1}
    assert items["101669"].category == "Scene Understanding"
    answers = _answers(tmp_path / "e.jsonl", {"101669": "A"})
    assert score("seed", items, answers)["accuracy"] == 1.0


def test_rec_accuracy_at_iou_half(tmp_path):
    rows = [
        {
            "img_path": "COCO_train2014_000000580957.jpg",
            "expression": "bowl behind the others",
            "bbox": [100.0, 50.0, 300.0, 250.0],
            "dataset_name": "refcoco",
            "height": 400,
            "width": 400,
        },
        {
            "img_path": "COCO_train2014_000000580957.jpg",
            "expression": "left cup",
            "bbox": [0.0, 0.0, 200.0, 200.0],
            "dataset_name": "refcoco",
            "height": 400,
            "width": 800,
        },
        {
            "img_path": "a.jpg",
            "expression": "inverted",
            "bbox": [10, 10, 5, 20],
            "height": 50,
            "width": 50,
        },
        {
            "img_path": "a.jpg",
            "expression": "outside",
            "bbox": [10, 10, 90, 20],
            "height": 50,
            "width": 50,
        },
        {"img_path": "a.jpg", "expression": "no size", "bbox": [1, 1, 2, 2]},
    ]
    items, ledger = load_benchmark("rec", [_jsonl(tmp_path / "REC_refcoco_unc_val.jsonl", rows)])
    assert ledger.counts == {"bad_box": 1, "box_outside_image": 1, "missing_field": 1}
    assert items["0"].prompt == "Where is bowl behind the others in the image?"
    assert items["0"].truth == pytest.approx([0.25, 0.125, 0.75, 0.625])
    answers = _answers(
        tmp_path / "a.jsonl",
        # item 0: IoU([.25,.125,.75,.625], [.25,.125,.75,.5]) = 0.2/0.25 = 0.8 -> hit
        # item 1: truth [0, 0, .25, .5]; [0, 0, .25, .2] has IoU 0.4 -> miss
        {"0": "[0.250,0.125,0.750,0.500]", "1": "It is at [0.000,0.000,0.250,0.200]."},
    )
    m = score("rec", items, answers)
    assert m["accuracy"] == 0.5 and m["unparsable_answers"] == 0
    # the same boxes written in the padded-square frame: item 1's image is 800 x 400
    padded = _answers(
        tmp_path / "p.jsonl", {"0": "[0.250,0.125,0.750,0.500]", "1": "[0.000,0.250,0.250,0.500]"}
    )
    assert score("rec", items, padded, box_frame="padded")["accuracy"] == 1.0
    assert score("rec", items, {"0": "no box", "1": "[0.1,"})["unparsable_answers"] == 2


def test_answers_file_rows_counted(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"question_id": 1, "text": "a"}\n{"question_id": 1, "text": "b"}\nnot json\n')
    answers, skipped = read_answers(path)
    assert answers == {"1": "a"} and skipped == {"duplicate_answer": 1, "bad_answer_row": 1}


# ----------------------------------------------------------------------------- end to end


def test_evaluate_end_to_end_on_a_tiny_model(tmp_path, capsys):
    import torch

    from genixer.models import build_tokenizer, build_vlm, save_tokenizer, save_vlm
    from tests.test_models import CORPUS, SPEC

    tok = build_tokenizer(CORPUS, vocab_size=400)
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    save_vlm(build_vlm(SPEC, tok), model_dir)
    save_tokenizer(tok, model_dir)
    images = tmp_path / "images"
    images.mkdir()
    for name, color in (("a.jpg", "red"), ("b.jpg", "blue")):
        Image.new("RGB", (40, 30), color).save(images / name)
    pope = _jsonl(
        tmp_path / "coco_pope_random.json",
        [
            {"question_id": 1, "image": "a.jpg", "text": "Is there a square?", "label": "yes"},
            {"question_id": 2, "image": "b.jpg", "text": "Is there a dog?", "label": "no"},
            {"question_id": 3, "image": "b.jpg", "text": "Is there a cat?", "label": "no"},
            {"question_id": 4, "image": "gone.jpg", "text": "Is there a car?", "label": "no"},
        ],
    )
    qfile = tmp_path / "pope_questions.jsonl"
    assert (
        evaluate_main(
            [
                "prepare",
                "--benchmark",
                "pope",
                "--annotations",
                str(pope),
                "--question-file",
                str(qfile),
            ]
        )
        == 0
    )
    args = [
        "--model-path",
        str(model_dir),
        "--question-file",
        str(qfile),
        "--image-folder",
        str(images),
        "--answers-file",
        str(tmp_path / "out" / "answers.jsonl"),
        "--benchmark",
        "pope",
        "--annotations",
        str(pope),
        "--batch-size",
        "2",
        "--max-new-tokens",
        "3",
        "--device",
        "cpu",
    ]
    assert evaluate_main(args) == 0
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()
    ]
    assert [r["question_id"] for r in rows] == ["1", "2", "3"]
    assert all(set(r) >= {"question_id", "prompt", "text", "answer_id", "model_id"} for r in rows)
    metrics = json.loads((tmp_path / "out" / "answers.metrics.json").read_text())
    assert metrics["answering"]["skipped"] == {"image_missing": 1}
    assert (
        metrics["questions"] == 4 and metrics["answered"] == 3 and metrics["missing_answers"] == 1
    )
    assert set(metrics) >= {"accuracy", "precision", "recall", "f1", "yes_ratio", "per_category"}
    ledger = (tmp_path / "out" / "answers.skipped.jsonl").read_text()
    assert "image_missing" in ledger and '"id": "4"' in ledger
    # a re-run resumes: nothing answered again, the same answers kept
    assert evaluate_main(args) == 0
    again = json.loads((tmp_path / "out" / "answers.metrics.json").read_text())
    assert again["answering"]["answered_now"] == 0 and again["answering"]["resumed"] == 3
    assert again["accuracy"] == metrics["accuracy"]
    assert (
        evaluate_main(
            [
                "score",
                "--benchmark",
                "pope",
                "--annotations",
                str(pope),
                "--answers-file",
                str(tmp_path / "out" / "answers.jsonl"),
            ]
        )
        == 0
    )
    assert "metrics:" in capsys.readouterr().out


def test_evaluate_answers_with_an_hf_family_folder(tmp_path):
    from genixer.models.hf import tiny

    model_dir = tiny.build("idefics3", tmp_path / "idefics3")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), "red").save(images / "a.jpg")
    qfile = _jsonl(
        tmp_path / "q.jsonl",
        [{"question_id": i, "image": "a.jpg", "text": f"Is there a square? {i}"} for i in range(3)],
    )
    answers = tmp_path / "out" / "answers.jsonl"
    args = ["--family", "hf", "--model-path", str(model_dir), "--question-file", str(qfile)]
    args += ["--image-folder", str(images), "--answers-file", str(answers)]
    assert evaluate_main([*args, "--max-new-tokens", "3", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [str(r["question_id"]) for r in rows] == ["0", "1", "2"]
    assert all(r["prompt"] and isinstance(r["text"], str) for r in rows)
