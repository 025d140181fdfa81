"""The five grounding tasks: render -> parse round trips, the oracle, malformed generations,
and the task-agnostic detector; plus the world's referring expressions."""

from __future__ import annotations

import random

import pytest

from genixer.core.boxes import find_brackets, format_box, format_boxes, format_point, parse_bracket
from genixer.core.record import QA
from genixer.tasks import GROUNDING_TASKS, AgnosticTask, ParseError, detect_grounding, get_task
from genixer.tasks.rec import rec_oracle_detail
from genixer.world.referring import expressions, resolve
from genixer.world.scene import Obj, Scene, sample_scene


def scenes(n: int) -> list[Scene]:
    return [sample_scene(random.Random(s), 48, 3, 1, 4) for s in range(n)]


SCENES = scenes(150)
AGNOSTIC = AgnosticTask(list(GROUNDING_TASKS), detect=detect_grounding)

# Two circles (so "the circle" and "the red object" are not unique), one square.
HAND = Scene(
    48,
    48,
    3,
    [
        Obj("circle", "red", 0, (1, 1, 14, 14)),
        Obj("circle", "blue", 4, (17, 17, 30, 30)),
        Obj("square", "red", 8, (33, 33, 46, 46)),
    ],
)
RED_CIRCLE = format_box(HAND.norm_box(HAND.objects[0]))
BLUE_CIRCLE = format_box(HAND.norm_box(HAND.objects[1]))
RED_SQUARE = format_box(HAND.norm_box(HAND.objects[2]))


def shifted(box_text: str) -> str:
    """The box moved by half its width towards the middle: IoU 1/3 with the original."""
    (x0, y0, x1, y1), *_ = parse_bracket(box_text)
    dx = (x1 - x0) / 2 * (1 if x0 < 0.5 else -1)
    return format_box((x0 + dx, y0, x1 + dx, y1))


def ok(name: str, text: str, scene: Scene = HAND) -> bool:
    task = get_task(name)
    return task.check(scene, task.parse(text))


# --- round trips over random scenes ------------------------------------------------------


@pytest.mark.parametrize("name", GROUNDING_TASKS)
def test_round_trip_and_oracle_on_truth(name):
    task, rng, made = get_task(name), random.Random(1), 0
    kinds = set()
    for scene in SCENES:
        turns = task.sample(scene, rng)
        if turns is None:
            continue
        made += 1
        text = task.serialize(turns)
        back = task.parse(text)
        assert [(t.question, t.answer) for t in back] == [(t.question, t.answer) for t in turns]
        for b, t in zip(back, turns, strict=True):
            assert t.boxes and len(b.boxes) == len(t.boxes)
            for bb, tb in zip(b.boxes, t.boxes, strict=True):
                assert bb == pytest.approx(tb, abs=5e-4)
                assert all(0.0 <= v <= 1.0 for v in bb)
        assert task.check(scene, back), text
        assert all(t.kind in task.kinds for t in back), [t.kind for t in back]
        kinds.update(t.kind for t in back)
        detected, _ = AGNOSTIC.parse(text)
        assert detected.name == name, text
        assert task.conversation(back) and task.judge_prompts(back)
    assert made >= 140
    assert kinds == set(task.kinds)  # every kind shows up


@pytest.mark.parametrize("name", GROUNDING_TASKS)
def test_oracle_rejects_a_shifted_box(name):
    task, rng, tried = get_task(name), random.Random(2), 0
    for scene in SCENES:
        turns = task.sample(scene, rng)
        if turns is None or turns[0].kind in ("point_color", "point_shape", "point_name"):
            continue
        text = task.serialize(turns)
        # the box the first pair answers with, else the first box of the text
        first_answer = text.split("Question:")[1].split("Answer:")[1]
        found = find_brackets(first_answer) or find_brackets(text)
        box = "[" + found[0][2] + "]"
        bad = text.replace(box, shifted(box))
        assert not task.check(scene, task.parse(bad)), bad
        tried += 1
    assert tried >= 50


# --- the oracle on a hand-made scene -----------------------------------------------------


def test_rec_oracle():
    assert ok("rec", f"Question: Where is the red circle in the image? Answer: {RED_CIRCLE}")
    assert ok("rec", f"Question: Where is the square in the image? Answer: {RED_SQUARE}")
    assert ok(
        "rec", f"Question: Where is the object at the center in the image? Answer: {BLUE_CIRCLE}"
    )
    assert not ok("rec", f"Question: Where is the square in the image? Answer: {RED_CIRCLE}")
    shift = shifted(RED_SQUARE)
    assert not ok("rec", f"Question: Where is the square in the image? Answer: {shift}")
    # not unique, even with a box on one of them
    assert not ok("rec", f"Question: Where is the circle in the image? Answer: {RED_CIRCLE}")
    assert not ok("rec", f"Question: Where is the red object in the image? Answer: {RED_CIRCLE}")
    assert not ok("rec", f"Question: Where is the dog in the image? Answer: {RED_CIRCLE}")
    assert not ok("rec", f"Question: Where is the green square in the image? Answer: {RED_SQUARE}")
    qa = get_task("rec").parse(f"Question: Where is the circle in the image? Answer: {RED_CIRCLE}")[
        0
    ]
    assert rec_oracle_detail(HAND, qa) == {"unique": False, "iou": None, "kind": "rec_shape"}
    qa = get_task("rec").parse(f"Question: Where is the square in the image? Answer: {shift}")[0]
    d = rec_oracle_detail(HAND, qa)
    assert d["unique"] and d["iou"] == pytest.approx(1 / 3, abs=0.02)

    def why(text: str) -> str | None:
        task = get_task("rec")
        return task.oracle_error(HAND, task.parse(text))

    assert why(f"Question: Where is the square in the image? Answer: {RED_SQUARE}") is None
    assert why(f"Question: Where is the square in the image? Answer: {shift}") == (
        "box_iou_below_threshold"
    )
    assert why(f"Question: Where is the circle in the image? Answer: {RED_CIRCLE}") == (
        "expression_not_unique"
    )
    assert why(f"Question: Where is the dog in the image? Answer: {RED_CIRCLE}") == (
        "expression_not_unique"
    )


def test_reg_oracle():
    assert ok("reg", f"Question: Describe the region {RED_CIRCLE}. Answer: the red circle.")
    assert ok(
        "reg", f"Question: Describe the region {RED_CIRCLE}. Answer: the object at the top left."
    )
    assert ok("reg", f"Question: Describe the region {BLUE_CIRCLE}. Answer: the blue object.")
    assert not ok("reg", f"Question: Describe the region {RED_CIRCLE}. Answer: the circle.")
    assert not ok("reg", f"Question: Describe the region {RED_CIRCLE}. Answer: the square.")
    assert not ok(
        "reg", f"Question: Describe the region {shifted(RED_CIRCLE)}. Answer: the red circle."
    )
    assert not ok("reg", f"Question: Describe the region {RED_CIRCLE}. Answer: a nice circle.")


def test_pointqa_oracle():
    center = format_point((22 / 48, 22 / 48))
    empty = format_point((0.5, 0.15))  # the top cell is empty
    assert ok("pointqa", f"Question: What color is the object at {center}? Answer: blue.")
    assert ok("pointqa", f"Question: Which shape is at {center}? Answer: circle.")
    assert ok("pointqa", f"Question: Name the object at {center}. Answer: blue circle.")
    assert not ok("pointqa", f"Question: What color is the object at {center}? Answer: red.")
    assert not ok("pointqa", f"Question: What color is the object at {empty}? Answer: blue.")
    assert ok("pointqa", f"Question: Classify the object in {RED_SQUARE}. Answer: red square.")
    assert not ok(
        "pointqa", f"Question: Classify the object in {shifted(RED_SQUARE)}. Answer: red square."
    )
    cands = f"{RED_CIRCLE}, {BLUE_CIRCLE}, {RED_SQUARE}"
    choose = "Question: Select the box that holds {e}. Candidates: {c}. Answer: {a}"
    assert ok("pointqa", choose.format(e="the red square", c=cands, a=RED_SQUARE))
    assert not ok("pointqa", choose.format(e="the red square", c=cands, a=RED_CIRCLE))
    assert not ok("pointqa", choose.format(e="the circle", c=cands, a=RED_CIRCLE))  # not unique
    # two candidates outline the target: not a well-formed item
    two = f"{RED_SQUARE}, {RED_SQUARE}, {BLUE_CIRCLE}"
    assert not ok("pointqa", choose.format(e="the red square", c=two, a=RED_SQUARE))


def test_qcbox_oracle():
    reds = format_boxes([HAND.norm_box(HAND.objects[0]), HAND.norm_box(HAND.objects[2])])
    q = "Question: How many objects have the color of the square? Answer: "
    good = f"The square{RED_SQUARE} is red. There are 2 red objects{reds}. So the answer is 2."
    assert ok("qcbox", q + good)
    assert not ok("qcbox", q + good.replace("answer is 2", "answer is 3"))
    assert not ok("qcbox", q + good.replace(RED_SQUARE, shifted(RED_SQUARE), 1))
    assert not ok("qcbox", q + good.replace("2 red objects", "3 red objects"))
    one = f"The square{RED_SQUARE} is red. There are 2 red objects{RED_SQUARE}. So the answer is 2."
    assert not ok("qcbox", q + one)  # the group phrase lacks a box
    ungrounded = f"The thing{RED_SQUARE} is red. So the answer is 2."
    assert not ok("qcbox", q + ungrounded)
    circle_q = "Question: How many objects have the color of the circle? Answer: "
    assert not ok(
        "qcbox",
        circle_q
        + f"The circle{RED_CIRCLE} is red. There are 2 red objects{reds}. So the answer is 2.",
    )
    neighbor = (
        f"Question: What color is the object directly above the square? Answer: The square"
        f"{RED_SQUARE} is at the bottom right. The object at the right is nothing. So the answer is red."
    )
    assert not ok("qcbox", neighbor)  # the right cell is empty: no single answer
    shape_q = (
        "Question: Count the objects with the shape of the blue object. Answer: The blue object"
        f"{BLUE_CIRCLE} is a circle. There are 2 circles"
        f"{format_boxes([HAND.norm_box(HAND.objects[1]), HAND.norm_box(HAND.objects[0])])}. "
        "So the answer is 2."
    )
    assert ok("qcbox", shape_q)


def test_rd_oracle():
    t1 = f"Question: Where is the square? Answer: The square{RED_SQUARE} is at the bottom right."
    t2 = f"Question: What is in the region {BLUE_CIRCLE}? Answer: the blue circle."
    t3 = f"Question: What color is the object at the top left{RED_CIRCLE}? Answer: red."
    assert ok("rd", "\n".join([t1, t2, t3]))
    assert ok("rd", "\n".join([t1, t2]))
    assert not ok("rd", "\n".join([t1, t2.replace("blue circle", "circle")]))  # not unique
    assert not ok("rd", "\n".join([t1.replace("bottom right", "top"), t2]))
    assert not ok("rd", "\n".join([t1.replace(RED_SQUARE, shifted(RED_SQUARE)), t2]))
    assert not ok("rd", "\n".join([t2, t3.replace("red.", "blue.")]))
    t4 = f"Question: What color is the circle{RED_CIRCLE}? Answer: red."
    assert not ok("rd", "\n".join([t1, t4]))  # "the circle" is not unique
    t5 = f"Question: Which shape is the blue object{BLUE_CIRCLE}? Answer: circle."
    task = get_task("rd")
    turns = task.parse("\n".join([t1, t5]))
    assert task.check(HAND, turns)
    assert [t.kind for t in turns] == ["rd_locate", "rd_shape"]


# --- malformed generations ----------------------------------------------------------------

REC_Q = "Question: Where is the red circle in the image? Answer: "
REG_Q = "Question: Describe the region "
POINT_Q = "Question: What color is the object at "
CHOOSE_Q = "Question: Select the box that holds the red circle. Candidates: "
QC_Q = "Question: How many objects have the color of the circle? Answer: "
BOX = "[0.1,0.2,0.3,0.4]"


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("rec", "", "empty"),
        ("rec", REC_Q + "[0.1,0.2,0.3,0.4", "bad_box"),  # missing bracket
        ("rec", REC_Q + "0.1,0.2,0.3,0.4", "no_box"),
        ("rec", REC_Q + "[0.1,0.2,0.3,0.4,0.5]", "bad_box"),  # 5 numbers
        ("rec", REC_Q + "[0.1,0.2,1.3,0.4]", "bad_box"),  # > 1
        ("rec", REC_Q + "[-0.1,0.2,0.3,0.4]", "bad_box"),  # negative
        ("rec", REC_Q + "[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6]", "bad_box"),  # ';' list
        ("rec", REC_Q + "[0.1,0.2,0.3,0.4];[0.5,0.5,0.6,0.6]", "bad_box"),
        ("rec", REC_Q + "[0.1,0.2]", "bad_box"),  # a point
        ("rec", REC_Q + "[]", "bad_box"),
        ("rec", REC_Q + "top left", "no_box"),
        ("rec", REC_Q + "it is at [0.1,0.2,0.3,0.4]", "extra_text"),
        ("rec", f"Question: Where is the red circle? Answer: {BOX}", "bad_question"),
        ("rec", f"{REC_Q}{BOX}\n{REC_Q}{BOX}", "wrong_turn_count"),
        ("reg", REG_Q + "0.1,0.2,0.3,0.4]. Answer: the circle.", "bad_box"),
        ("reg", REG_Q + "0.1,0.2,0.3,0.4. Answer: the circle.", "no_box"),
        ("reg", REG_Q + "[0.1,0.2,0.3,0.4,0.5]. Answer: the circle.", "bad_box"),
        ("reg", REG_Q + "[0.1,0.2,0.3,1.4]. Answer: the circle.", "bad_box"),
        ("reg", REG_Q + "[0.1,-0.2,0.3,0.4]. Answer: the circle.", "bad_box"),
        ("reg", REG_Q + "[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6]. Answer: the circle.", "bad_box"),
        ("reg", REG_Q + f"{BOX}. Answer: the circle{BOX}.", "bad_answer"),
        ("reg", f"Question: What is here {BOX}? Answer: the circle.", "bad_question"),
        ("pointqa", POINT_Q + "[0.5,0.5? Answer: red.", "bad_box"),
        ("pointqa", POINT_Q + "[0.5,0.5,0.5]? Answer: red.", "bad_box"),
        ("pointqa", POINT_Q + "[0.5,1.5]? Answer: red.", "bad_box"),
        ("pointqa", POINT_Q + "[-0.5,0.5]? Answer: red.", "bad_box"),
        ("pointqa", POINT_Q + "[0.5,0.5;0.2,0.2]? Answer: red.", "bad_box"),
        ("pointqa", POINT_Q + "the middle? Answer: red.", "no_box"),
        ("pointqa", POINT_Q + f"[0.5,0.5]? Answer: {BOX}", "bad_answer"),
        (
            "pointqa",
            CHOOSE_Q + f"{BOX}, [0.5,0.5,0.6,0.6]. Answer: [0.7,0.7,0.8,0.8]",
            "not_a_candidate",
        ),
        ("pointqa", CHOOSE_Q + f"{BOX}. Answer: {BOX}", "too_few_candidates"),
        ("pointqa", CHOOSE_Q + f"{BOX}, [0.5,0.5,0.6,0.6,0.7]. Answer: {BOX}", "bad_box"),
        (
            "pointqa",
            CHOOSE_Q + f"[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6], {BOX}. Answer: {BOX}",
            "bad_box",
        ),
        (
            "pointqa",
            CHOOSE_Q + f"{BOX}, [0.5,0.5,0.6,0.6]. Answer: {BOX};[0.5,0.5,0.6,0.6]",
            "bad_box",
        ),
        ("pointqa", CHOOSE_Q + f"{BOX}, [0.5,0.5,0.6,0.6]. Answer: [0.1,0.2,0.3,0.4", "bad_box"),
        (
            "pointqa",
            CHOOSE_Q + f"{BOX} or maybe [0.5,0.5,0.6,0.6]. Answer: {BOX}",
            "bad_candidates",
        ),
        ("qcbox", QC_Q + "The circle is red. So the answer is 2.", "no_box"),
        ("qcbox", QC_Q + f"The circle{BOX} is red. There are 2.", "no_final_answer"),
        ("qcbox", QC_Q + "So the answer is 2.", "no_reasoning"),
        ("qcbox", QC_Q + "The circle[0.1,0.2,0.3,0.4 is red. So the answer is 2.", "bad_box"),
        ("qcbox", QC_Q + "The circle[0.1,0.2,0.3,1.4] is red. So the answer is 2.", "bad_box"),
        ("qcbox", QC_Q + "The circle[0.1,0.2,0.3,0.4,0.5] is red. So the answer is 2.", "bad_box"),
        ("qcbox", QC_Q + "The circle[0.1,0.2] is red. So the answer is 2.", "bad_box"),
        (
            "rd",
            f"Question: Where is the square? Answer: The square{BOX} is at the top.",
            "wrong_turn_count",
        ),
        (
            "rd",
            f"Question: Where is the square? Answer: The square{BOX} is at the top.\n"
            "Question: What color is the circle? Answer: red.",
            "no_box",
        ),
        (
            "rd",
            f"Question: Where is the square? Answer: The square{BOX} is at the top.\n"
            "Question: What is in the region [0.1,0.2,-0.3,0.4]? Answer: the circle.",
            "bad_box",
        ),
        (
            "rd",
            f"Question: Where is the square? Answer: The square{BOX} is at the top.\n"
            "Question: What is in the region [0.1,0.2,0.3,0.4? Answer: the circle.",
            "bad_box",
        ),
    ],
)
def test_malformed_generations_fail_with_a_reason(name, text, reason):
    with pytest.raises(ParseError) as err:
        get_task(name).parse(text)
    assert err.value.reason == reason


# --- task-agnostic detection ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (REC_Q + BOX, "rec"),
        (REG_Q + BOX + ". Answer: the circle.", "reg"),
        (POINT_Q + "[0.5,0.5]? Answer: red.", "pointqa"),
        (f"Question: Classify the object in {BOX}. Answer: red square.", "pointqa"),
        (CHOOSE_Q + f"{BOX}, [0.5,0.5,0.6,0.6]. Answer: {BOX}", "pointqa"),
        (QC_Q + f"The circle{BOX} is red. So the answer is 1.", "qcbox"),
        (f"{REC_Q}{BOX}\nQuestion: What color is the circle{BOX}? Answer: red.", "rd"),
    ],
)
def test_detector_recognises_each_task(text, name):
    assert detect_grounding(text).name == name


def test_agnostic_mode_refuses_tasks_outside_its_members():
    with pytest.raises(ParseError) as err:
        AgnosticTask(["rec"], detect=detect_grounding).parse(REG_Q + BOX + ". Answer: the circle.")
    assert err.value.reason == "task_not_in_mode"


# --- referring expressions of the world ------------------------------------------------------


def test_every_expression_is_unique_and_resolves_back():
    for scene in SCENES:
        found = expressions(scene)
        assert found  # a position expression always exists
        for text, obj in found:
            assert resolve(scene, text) is obj
            assert resolve(scene, text.upper() + ".") is obj  # case and a final period
        # every object is reachable by position
        assert {o for _, o in found} == set(scene.objects)


def test_resolve_refuses_what_is_not_unique_or_not_ours():
    assert resolve(HAND, "the red circle") is HAND.objects[0]
    assert resolve(HAND, "the square") is HAND.objects[2]
    assert resolve(HAND, "the circle at the center") is HAND.objects[1]
    assert resolve(HAND, "the object at the bottom right") is HAND.objects[2]
    assert resolve(HAND, "the blue object") is HAND.objects[1]
    assert resolve(HAND, "the circle") is None  # two circles
    assert resolve(HAND, "the red object") is None  # two red objects
    assert resolve(HAND, "the object at the top") is None  # empty cell
    assert resolve(HAND, "the square at the top left") is None  # wrong shape there
    assert resolve(HAND, "the green triangle") is None
    assert resolve(HAND, "a red circle") is None
    assert resolve(HAND, "the dog") is None
    assert resolve(HAND, "") is None
    assert {t for t, _ in expressions(HAND)} >= {"the red circle", "the square", "the blue object"}
    assert "the circle" not in {t for t, _ in expressions(HAND)}


def test_qa_boxes_hold_every_box_in_reading_order():
    qa = get_task("pointqa").parse("Question: Which shape is at [0.25,0.75]? Answer: circle.")[0]
    assert qa.boxes == [[0.25, 0.75, 0.25, 0.75]]
    reds = "[0.1,0.1,0.2,0.2;0.3,0.3,0.4,0.4]"
    qa = get_task("qcbox").parse(
        QC_Q + f"The circle{BOX} is red. There are 2 red objects{reds}. So the answer is 2."
    )[0]
    assert qa.boxes == [[0.1, 0.2, 0.3, 0.4], [0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4]]
    assert isinstance(qa, QA) and qa.answer.endswith("So the answer is 2")


def test_shikra_rec_export_writes_pixel_boxes(tmp_path):
    import json

    from genixer.core.record import Record
    from genixer.pipeline.stages.export import export_shikra_rec
    from genixer.world.scene import render

    scene = Scene(48, 48, 3, [Obj("circle", "red", 0, (2, 3, 14, 15))])
    (tmp_path / "images").mkdir()
    render(scene).save(tmp_path / "images" / "a.png")
    rec_task = get_task("rec")
    (qa,) = rec_task.parse(
        "Question: Where is the red circle in the image? Answer: [0.042,0.062,0.292,0.312]."
    )
    good = Record("r1", "a", "a.png", "rec", "rec", [qa], "", {}, {}, True)
    bad = Record("r2", "a", "a.png", "rec", "rec", [QA("Where?", "nowhere")], "", {}, {}, False)
    other = Record("r3", "a", "a.png", "reg", "reg", [QA("x", "y")], "", {}, {}, None)
    info = export_shikra_rec([good, bad, other], tmp_path, {"r1": 0.41})
    assert info == {"shikra_rec": 1, "shikra_rec_unreadable": 1}
    (row,) = [json.loads(x) for x in (tmp_path / "shikra_rec.jsonl").read_text().splitlines()]
    assert row["img_path"] == "a.png" and row["expression"] == "the red circle"
    assert row["bbox"] == [2.02, 2.98, 14.02, 14.98] and (row["width"], row["height"]) == (48, 48)
    assert row["score"] == 0.41
