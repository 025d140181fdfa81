"""Every generic task: render -> parse round trip, malformed generations, the oracle."""

from __future__ import annotations

import random

import pytest

from genixer.core.record import QA
from genixer.tasks import GENERIC_TASKS, AgnosticTask, ParseError, get_task
from genixer.tasks.templates import GENERIC_INSTRUCTIONS, TASK_SUFFIX, instruction
from genixer.world.scene import Obj, Scene, sample_scene


def scenes(n: int, seed: int = 0) -> list[Scene]:
    rng = random.Random(seed)
    return [sample_scene(rng, 48, 3, 1, 4) for _ in range(n)]


@pytest.mark.parametrize("name", GENERIC_TASKS)
def test_round_trip_and_oracle_on_truth(name):
    task, rng, made = get_task(name), random.Random(1), 0
    for scene in scenes(150):
        turns = task.sample(scene, rng)
        if turns is None:
            continue
        made += 1
        text = task.serialize(turns)
        back = task.parse(text)
        assert [(t.question, t.answer, t.options) for t in back] == [
            (t.question, t.answer, t.options) for t in turns
        ]
        assert task.check(scene, back), text
        # the task-agnostic parser recognises the task from the text alone
        detected, _ = AgnosticTask(list(GENERIC_TASKS)).parse(text)
        assert detected.name == name
        assert task.conversation(back) and task.judge_prompts(back)
    assert made > 100


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("common", "", "empty"),
        ("common", "How many circles are there? 2", "no_question_marker"),
        ("common", "Question: How many circles are there?", "no_answer_marker"),
        ("common", "Question: How many circles are there? Answer:", "empty_answer"),
        ("common", "Question:  Answer: 2.", "empty_question"),
        ("common", "Question: a? Answer: 1.\nQuestion: b? Answer: 2.", "wrong_turn_count"),
        ("md", "Question: a? Answer: 1.", "wrong_turn_count"),
        ("md", "Question: a? Answer: 1.\nQuestion: b?", "no_answer_marker"),
        ("adv", "Question: Is there a red circle? Answer: maybe.", "not_yes_no"),
        ("mcvqa", "Question: Which shape is red? Answer: A", "no_options"),
        ("mcvqa", "Question: Which shape is red? A. circle\nC. square Answer: A", "bad_option"),
        (
            "mcvqa",
            "Question: Which shape is red? A. circle\nB. square Answer: C",
            "answer_out_of_range",
        ),
        (
            "mcvqa",
            "Question: Which shape is red? A. circle\nB. square Answer: circle",
            "answer_not_a_letter",
        ),
        (
            "mcvqa",
            "Question: Which shape is red? A. circle\nB. circle Answer: A",
            "duplicate_options",
        ),
        ("mcvqa", "Question: Which shape is red? A. circle Answer: A", "too_few_options"),
        (
            "mcvqa",
            "Question: Which shape is red? A. circle\nB. square Answer: circle (B)",
            "answer_letter_mismatch",
        ),
        (
            "mcvqa",
            "Question: Which shape is red? A. circle\nB. square Answer: circle",
            "answer_not_a_letter",
        ),
    ],
)
def test_malformed_generations_fail_with_a_reason(name, text, reason):
    with pytest.raises(ParseError) as err:
        get_task(name).parse(text)
    assert err.value.reason == reason


def test_oracle_on_a_hand_made_scene():
    scene = Scene(
        48,
        48,
        3,
        [
            Obj("circle", "red", 0, (1, 1, 14, 14)),
            Obj("circle", "blue", 4, (17, 17, 30, 30)),
            Obj("square", "red", 8, (33, 33, 46, 46)),
        ],
    )
    common = get_task("common")

    def ok(q: str, a: str) -> bool:
        return common.check(scene, [QA(q, a)])

    assert ok("How many circles are there?", "2")
    assert ok("How many circles are there?", "two")  # answers are normalized
    assert not ok("How many circles are there?", "3")
    assert ok("Count the red objects.", "2")
    assert ok("Tell me the number of objects.", "3")
    assert ok("What color is the square?", "red")
    assert not ok("What color is the circle?", "red")  # two circles: no single answer
    assert ok("Which shape is blue?", "circle")
    assert not ok("Which shape is red?", "circle")  # two red objects
    assert ok("Where is the red square?", "bottom right")
    assert ok("Identify the object at the center.", "blue circle")
    assert not ok("Identify the object at the top.", "red circle")  # empty cell
    assert not ok("Why is the sky blue?", "physics")  # not a question of the world
    adv = get_task("adv")
    assert adv.check(scene, [QA("Is there a red square?", "yes")])
    assert adv.check(scene, [QA("Is there a blue square?", "no")])
    assert not adv.check(scene, [QA("Is there a blue square?", "yes")])
    mc = get_task("mcvqa")
    assert mc.check(scene, [QA("What color is the square?", "B", ["blue", "red", "green"])])
    assert not mc.check(scene, [QA("What color is the square?", "A", ["blue", "red", "green"])])
    assert not mc.check(scene, [QA("What color is the square?", "B", ["red", "red", "green"])])
    md = get_task("md")
    assert md.check(
        scene, [QA("How many circles are there?", "2"), QA("Count the red objects.", "2")]
    )
    assert not md.check(
        scene, [QA("How many circles are there?", "2"), QA("Count the red objects.", "1")]
    )

    # why a sample is false: its first false pair's reason
    def why(task, *pairs) -> str | None:
        return get_task(task).oracle_error(scene, [QA(q, a) for q, a in pairs])

    assert why("common", ("How many circles are there?", "2")) is None
    assert why("common", ("How many circles are there?", "3")) == "wrong_answer"
    assert why("common", ("What color is the circle?", "red")) == "no_single_answer"
    assert why("common", ("Identify the object at the top.", "red circle")) == "no_single_answer"
    assert why("common", ("Why is the sky blue?", "physics")) == "unknown_question"
    pairs = [("How many circles are there?", "2"), ("Count the red objects.", "1")]
    assert why("md", *pairs) == "wrong_answer"
    assert why("md", *reversed(pairs)) == "wrong_answer"


def test_two_level_templates():
    assert len(GENERIC_INSTRUCTIONS) >= 30
    assert len(set(GENERIC_INSTRUCTIONS)) == len(GENERIC_INSTRUCTIONS)
    rng = random.Random(0)
    draws = [instruction("mcvqa", rng, tau=0.5) for _ in range(2000)]
    generic_only = sum("+" not in tid for tid, _ in draws) / len(draws)
    assert 0.45 < generic_only < 0.55
    for tid, text in draws:
        assert text.endswith(TASK_SUFFIX["mcvqa"]) == ("+" in tid)
    assert all("+" not in instruction(None, rng, 0.0)[0] for _ in range(50))


def test_mc_answer_is_written_content_first_and_a_bare_letter_still_parses():
    mc = get_task("mcvqa")
    qa = QA("Which shape is red?", "B", options=["circle", "square"])
    text = mc.serialize([qa])
    assert text.endswith("Answer: square (B)")
    bare = text.replace("square (B)", "B")
    assert [(t.answer, t.options) for t in mc.parse(bare)] == [("B", ["circle", "square"])]
