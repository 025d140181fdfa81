"""Shikra's GPT4Gen data -> Q->C^Box A (BoxCoT) and RD (referential dialogue) samples.

Layout (``GPT4GEN_BoxCoT_train.jsonl``, ``GPT4GEN_RD_BoxCoT_train.jsonl``), one object a
line: ``{"img_path": "1000092795.jpg", "boxes": [[x0, y0, x1, y1], ...] (pixels), "question":
"What is <ph_st>the man<ph_ed> holding?", "question_boxes_seq": [[0]], "cot_with_ans":
"<ph_st>The man<ph_ed> holds <ph_st>a cup<ph_ed>. So the answer is a cup.",
"answer_boxes_seq": [[0], [1]], "answer": "a cup", "width"?, "height"?}``. Each ``<ph_ed>``
closes a phrase and takes the boxes its entry of the ``*_boxes_seq`` lists, written inline
(``[a,b,c,d;e,f,g,h]``); ``<ph_st>`` is dropped.

- BoxCoT -> ``qcbox``: the question with its boxes; the answer is the boxed reasoning chain
  and ``So the answer is <answer>`` (taken from the chain when it has one).
- RD -> ``rd``: each record is one turn (question, boxed answer); an image's records, in file
  order, become dialogues of 2-3 turns. An image with a single usable record cannot make a
  dialogue and is counted as skipped (``single_turn_dialogue``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from genixer.core.boxes import format_boxes
from genixer.core.record import QA
from genixer.sources.datasets.base import (
    Converter,
    Sample,
    Skip,
    check_box,
    chunk_sizes,
    iter_jsonl,
)
from genixer.tasks import ParseError
from genixer.tasks.qcbox import FINAL, join_answer, split_answer
from genixer.tasks.rec import grounded_qa

PHRASE_START = "<ph_st>"
PHRASE_END = "<ph_ed>"


def fill_boxes(text: str, seq: object, boxes: list, field: str) -> str:
    """``text`` with each ``<ph_ed>`` replaced by the boxes its ``seq`` entry names."""
    if not isinstance(text, str) or not text.strip():
        raise Skip("empty_text", field)
    seq = seq or []
    parts = text.replace(PHRASE_START, "").split(PHRASE_END)
    if len(parts) - 1 != len(seq):
        raise Skip(
            "placeholder_count_mismatch", f"{field}: {len(parts) - 1} phrases, {len(seq)} box lists"
        )
    out = [parts[0]]
    for idx, rest in zip(seq, parts[1:], strict=True):
        if not idx or not all(isinstance(i, int) and 0 <= i < len(boxes) for i in idx):
            raise Skip("bad_box_index", f"{field}: {idx} of {len(boxes)} boxes")
        out.append(format_boxes([boxes[i] for i in idx]) + rest)
    return " ".join("".join(out).split())


class _GPT4Gen(Converter):
    files = ("questions",)

    def __init__(self, root, questions: str, **kw) -> None:
        super().__init__(root, **kw)
        self.questions = questions

    def turn(self, row: dict) -> tuple[str, QA]:
        """``(image path, the record as one boxed question-answer pair)``."""
        image = self.image(row["img_path"])
        if "width" in row and "height" in row:
            w, h = row["width"], row["height"]
        else:
            w, h = self.images.size(image)
        boxes = [check_box(b, w, h, self.tolerance) for b in row["boxes"]]
        question = fill_boxes(row["question"], row.get("question_boxes_seq"), boxes, "question")
        chain = fill_boxes(row["cot_with_ans"], row.get("answer_boxes_seq"), boxes, "cot_with_ans")
        return image, grounded_qa(question, self.answer(chain, row))

    def answer(self, chain: str, row: dict) -> str:
        return chain


class GPT4GenBoxCoT(_GPT4Gen):
    name = "gpt4gen_boxcot"
    tasks = ("qcbox",)

    def records(self) -> Iterator[tuple[str, object]]:
        for n, row in iter_jsonl(self.file(self.questions)):
            yield f"line {n}", (n, row)

    def answer(self, chain: str, row: dict) -> str:
        try:
            if FINAL in chain:
                chain, final = split_answer(chain)
            else:
                final = row["answer"].strip().rstrip(".")
        except ParseError as err:
            raise Skip(f"unparsable_{err.reason}", str(err)) from None
        return join_answer(chain, final)

    def build(self, raw) -> list[Sample]:
        n, row = raw
        image, qa = self.turn(row)
        self.unique((image, qa.question))
        return [self.sample(f"line {n}", image, [qa])]


class GPT4GenRD(_GPT4Gen):
    name = "gpt4gen_rd"
    tasks = ("rd",)

    def records(self) -> Iterator[tuple[str, object]]:
        by_image: dict = defaultdict(list)
        for n, row in iter_jsonl(self.file(self.questions)):
            if isinstance(row, Skip):
                yield f"line {n}", row
            elif not isinstance(row.get("img_path"), str):
                yield f"line {n}", Skip("missing_field", "img_path")
            else:
                by_image[row["img_path"]].append((n, row))
        for img_path, rows in by_image.items():
            yield f"img_path {img_path}", rows

    def build(self, raw) -> list[Sample | Skip]:
        out: list[Sample | Skip] = []
        turns: list[tuple[int, str, QA]] = []
        for n, row in raw:
            try:
                image, qa = self.turn(row)
                if not qa.boxes:  # every turn of a referential dialogue grounds something
                    raise Skip("no_box", qa.question[:60])
                self.unique((image, qa.question))
                turns.append((n, image, qa))
            except Skip as s:
                out.append(Skip(s.reason, f"line {n}: {s.detail}", s.records))
            except (KeyError, TypeError, ValueError) as err:
                out.append(
                    Skip(
                        "missing_field" if isinstance(err, KeyError) else "bad_value",
                        f"line {n}: {err}",
                    )
                )
        sizes = chunk_sizes(len(turns), *self._task.num_turns)
        if turns and not sizes:
            out.append(Skip("single_turn_dialogue", f"line {turns[0][0]}", len(turns)))
        start = 0
        for k in sizes:
            part = turns[start : start + k]
            out.append(
                self.sample(
                    f"lines {part[0][0]}-{part[-1][0]}", part[0][1], [t for _, _, t in part]
                )
            )
            start += k
        return out
