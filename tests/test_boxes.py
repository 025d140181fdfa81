"""genixer.core.boxes: format/parse round trips, IoU, frames, clipping and malformed text."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from genixer.core.boxes import (
    BoxParseError,
    Frame,
    convert,
    find_brackets,
    format_box,
    format_boxes,
    format_point,
    iou,
    normalize,
    parse_box,
    parse_bracket,
    parse_point,
    quantize,
    to_original,
    to_padded,
)

TOL = 0.0005
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def boxes(draw, min_side: float = 0.0):
    xs = sorted((draw(unit), draw(unit)))
    ys = sorted((draw(unit), draw(unit)))
    box = (xs[0], ys[0], xs[1], ys[1])
    if min_side:
        assume(box[2] - box[0] > min_side and box[3] - box[1] > min_side)
    return box


non_square = st.tuples(st.integers(1, 2000), st.integers(1, 2000)).filter(lambda s: s[0] != s[1])


def close(a, b, tol=TOL) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- format <-> parse -------------------------------------------------------------------


@given(boxes())
def test_box_round_trip(box):
    text = format_box(box)
    assert " " not in text and text.count(",") == 3
    assert close(parse_box(text), box)
    assert parse_box(text) == quantize(box)


@given(st.tuples(unit, unit))
def test_point_round_trip(point):
    assert close(parse_point(format_point(point)), point)


@given(st.lists(boxes(), min_size=1, max_size=5))
def test_box_lists_round_trip(many):
    text = format_boxes(many)
    assert text.count("[") == 1 and text.count(";") == len(many) - 1
    back = parse_bracket(text)
    assert len(back) == len(many)
    assert all(close(b, m) for b, m in zip(back, many, strict=True))


def test_several_boxes_are_not_one_box():
    text = format_boxes([(0.1, 0.1, 0.2, 0.2), (0.3, 0.3, 0.4, 0.4)])
    assert text == "[0.100,0.100,0.200,0.200;0.300,0.300,0.400,0.400]"
    with pytest.raises(BoxParseError):
        parse_box(text)


def test_find_brackets_in_text():
    text = "The circle[0.1,0.2,0.3,0.4] and 2 squares[0.5,0.5,0.6,0.6;0.7,0.7,0.8,0.8]."
    found = find_brackets(text)
    assert [inner for _, _, inner in found] == [
        "0.1,0.2,0.3,0.4",
        "0.5,0.5,0.6,0.6;0.7,0.7,0.8,0.8",
    ]
    assert text[found[0][0] : found[0][1]] == "[0.1,0.2,0.3,0.4]"


# --- IoU --------------------------------------------------------------------------------


@given(boxes(), boxes())
def test_iou_is_in_unit_interval_and_symmetric(a, b):
    v = iou(a, b)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(iou(b, a), abs=1e-12)


@given(boxes(min_side=1e-4))
def test_iou_with_itself_is_one(a):
    assert iou(a, a) == pytest.approx(1.0)


def test_iou_known_values():
    assert iou((0, 0, 0.5, 0.5), (0.5, 0.5, 1, 1)) == 0.0
    assert iou((0, 0, 0.2, 0.2), (0.1, 0, 0.3, 0.2)) == pytest.approx(1 / 3)


# --- frames -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(boxes(), non_square)
def test_original_padded_original_round_trip(box, size):
    w, h = size
    padded = to_padded(box, w, h)
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in padded)
    assert close(to_original(padded, w, h), box, 1e-9)
    assert close(
        convert(convert(box, Frame.ORIGINAL, Frame.PADDED, w, h), "padded", "original", w, h),
        box,
        1e-9,
    )


@settings(max_examples=200)
@given(boxes(), non_square)
def test_padded_original_padded_round_trip(box, size):
    # padded-frame boxes that lie on the image (not on the padding) survive both ways
    w, h = size
    padded = to_padded(box, w, h)
    assert close(to_padded(to_original(padded, w, h), w, h), padded, 1e-9)


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (300, 100)])
def test_padding_is_centered_and_clipped_back(size):
    w, h = size
    side = max(w, h)
    x0, y0, x1, y1 = to_padded((0, 0, 1, 1), w, h)
    assert (x1 - x0, y1 - y0) == pytest.approx((w / side, h / side))
    assert x0 == pytest.approx(1 - x1) and y0 == pytest.approx(1 - y1)
    # the whole padded square maps back onto the whole image (the padding is clipped off)
    assert to_original((0, 0, 1, 1), w, h) == pytest.approx((0, 0, 1, 1))
    assert convert((0.1, 0.2, 0.3, 0.4), Frame.PADDED, Frame.PADDED, w, h) == (0.1, 0.2, 0.3, 0.4)


# --- clipping ---------------------------------------------------------------------------


def test_out_of_range_values_are_clipped():
    assert format_box((-0.2, 0.1, 1.3, 0.5)) == "[0.000,0.100,1.000,0.500]"
    assert format_point((1.7, -3)) == "[1.000,0.000]"
    assert quantize((-1, 0.12345, 2)) == (0.0, 0.123, 1.0)
    assert normalize((-10, 5, 120, 50), 100, 50) == (0.0, 0.1, 1.0, 1.0)
    assert parse_box("[-0.2,0.1,1.3,0.5]", strict=False) == (0.0, 0.1, 1.0, 0.5)


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=4, max_size=4))
def test_non_strict_parse_always_lands_in_unit_square(vals):
    text = "[" + ",".join(f"{v:.3f}" for v in vals) + "]"
    try:
        box = parse_box(text, strict=False)
    except BoxParseError:
        return  # inverted after clipping
    assert all(0.0 <= v <= 1.0 for v in box)


# --- malformed text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[0.1,0.2,0.3,0.4",  # missing closing bracket
        "0.1,0.2,0.3,0.4]",  # missing opening bracket
        "[0.1,0.2,0.3,0.4,0.5]",  # 5 numbers
        "[0.1,0.2,0.3]",  # 3 numbers
        "[0.1,0.2,1.3,0.4]",  # > 1 in strict mode
        "[-0.1,0.2,0.3,0.4]",  # negative
        "[]",  # empty
        "",  # empty
        "[a,b,c,d]",  # not numbers
        "[0.1,,0.3,0.4]",  # a hole
        "[0.5,0.2,0.3,0.4]",  # x1 < x0
        "[0.1,0.2;0.3,0.4]",  # two points, not a box
        "[0.1,0.2,0.3,0.4;]",  # trailing ';'
        "[0.1 0.2 0.3 0.4]",  # no commas
    ],
)
def test_malformed_boxes_raise(text):
    with pytest.raises(BoxParseError):
        parse_box(text)


@pytest.mark.parametrize("text", ["[0.1,0.2,0.3,0.4]", "[0.1]", "[1.2,0.5]", "[0.1,0.2"])
def test_malformed_points_raise(text):
    with pytest.raises(BoxParseError):
        parse_point(text)


def test_unbalanced_brackets_in_text_raise():
    with pytest.raises(BoxParseError):
        find_brackets("The circle[0.1,0.2,0.3,0.4 is red.")


def test_formatting_refuses_wrong_arity():
    with pytest.raises(ValueError):
        format_box((0.1, 0.2, 0.3))
    with pytest.raises(ValueError):
        format_point((0.1, 0.2, 0.3))
    with pytest.raises(ValueError):
        format_boxes([])
