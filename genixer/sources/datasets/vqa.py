"""Question-answering datasets -> Common VQA, Adv VQA, MC VQA and MD samples.

- VQAv2: ``v2_OpenEnded_mscoco_train2014_questions.json`` (``{"data_subtype", "questions":
  [{"image_id", "question", "question_id"}]}``) joined by ``question_id`` with
  ``v2_mscoco_train2014_annotations.json`` (``{"annotations": [{"question_id", "image_id",
  "multiple_choice_answer", "answers": [10 x {"answer", "answer_confidence", "answer_id"}],
  "answer_type", "question_type"}]}``). Images ``COCO_train2014_000000000009.jpg``.
  ``task=common``: one question per sample; ``task=md``: an image's questions grouped into
  dialogues of 2-3 turns (the paper's MD data from VQAv2).
- GQA: ``train_balanced_questions.json``, an object keyed by question id:
  ``{"<qid>": {"imageId", "question", "answer", "fullAnswer", "types", ...}}``; images
  ``<imageId>.jpg``.
- POPE: jsonl ``{"question_id", "image", "text", "label": "yes"|"no"}`` -> Adv VQA.
- A-OKVQA: ``aokvqa_v1p0_train.json``, a list of ``{"question_id", "image_id", "question",
  "choices", "correct_choice_idx", "direct_answers", "rationales", "split"}``; COCO 2017
  images ``000000299207.jpg`` -> MC VQA (or Common VQA with the correct choice as answer).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

from genixer.core.record import QA
from genixer.sources.datasets.base import (
    Converter,
    Sample,
    Skip,
    chunk_sizes,
    iter_jsonl,
    load_json,
    skips_of,
    top_level,
)
from genixer.tasks.mcvqa import letter


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Skip("empty_text", field)
    return " ".join(value.split())


class VQAv2(Converter):
    name = "vqav2"
    files = ("questions", "annotations")
    tasks = ("common", "md")

    def __init__(
        self,
        root,
        questions: str,
        annotations: str,
        image_pattern: str = "COCO_{data_subtype}_{image_id:012d}.jpg",
        min_agreement: int = 0,
        **kw,
    ) -> None:
        super().__init__(root, **kw)
        self.questions, self.annotations = questions, annotations
        self.image_pattern = image_pattern
        self.min_agreement = int(min_agreement)

    def _answers(self) -> tuple[dict, list]:
        data, dups = load_json(self.file(self.annotations))
        by_qid: dict = {}
        skips = list(skips_of(dups.items()))
        for i, ann in enumerate(top_level(data, "annotations", self.annotations)):
            qid = ann.get("question_id") if isinstance(ann, dict) else None
            if qid is None:
                skips.append((f"annotation {i}", Skip("missing_field", "question_id")))
            elif qid in by_qid:
                skips.append((f"question_id {qid}", Skip("duplicate_annotation", str(qid))))
            else:
                by_qid[qid] = ann
        return by_qid, skips

    def records(self) -> Iterator[tuple[str, object]]:
        answers, skips = self._answers()
        yield from skips
        data, dups = load_json(self.file(self.questions))
        subtype = data.get("data_subtype", "")
        yield from skips_of(dups.items())
        questions = top_level(data, "questions", self.questions)
        if self.task == "common":
            for i, q in enumerate(questions):
                yield f"question {i}", (subtype, q, answers)
            return
        by_image: dict = defaultdict(list)
        for i, q in enumerate(questions):
            try:
                self.unique(q["question_id"])
                qa = self._qa(q, answers)
                by_image[q["image_id"]].append(qa)
            except Skip as s:
                yield f"question {i}", s
            except (KeyError, TypeError) as err:
                yield f"question {i}", Skip("missing_field", str(err))
        for image_id, turns in by_image.items():
            yield f"image_id {image_id}", (subtype, image_id, turns)

    def _qa(self, q: dict, answers: dict) -> QA:
        ann = answers.get(q["question_id"])
        if ann is None:
            raise Skip("no_annotation", str(q["question_id"]))
        answer = _text(ann["multiple_choice_answer"], "multiple_choice_answer")
        votes = [a["answer"] for a in ann["answers"]]
        if not votes:
            raise Skip("no_answers", str(q["question_id"]))
        if Counter(votes)[answer] < self.min_agreement:
            raise Skip("low_agreement", f"{q['question_id']}: {answer!r} in {votes}")
        return QA(_text(q["question"], "question"), answer)

    def _image(self, subtype: str, image_id) -> str:
        return self.image(self.image_pattern.format(data_subtype=subtype, image_id=int(image_id)))

    def build(self, raw) -> list[Sample]:
        if self.task == "common":
            subtype, q, answers = raw
            self.unique(q["question_id"])
            qa = self._qa(q, answers)
            return [self.sample(q["question_id"], self._image(subtype, q["image_id"]), [qa])]
        subtype, image_id, turns = raw
        sizes = chunk_sizes(len(turns), *self._task.num_turns)
        if not sizes:
            raise Skip("too_few_turns", f"{len(turns)} question(s) for image {image_id}")
        try:
            image = self._image(subtype, image_id)
        except Skip as s:
            raise Skip(s.reason, s.detail, records=len(turns)) from None
        out, start = [], 0
        for n in sizes:
            out.append(self.sample(f"{image_id}:{start}", image, turns[start : start + n]))
            start += n
        return out


class GQA(Converter):
    name = "gqa"
    files = ("questions",)
    tasks = ("common",)

    def __init__(self, root, questions: str, answer_field: str = "answer", **kw) -> None:
        super().__init__(root, **kw)
        self.questions, self.answer_field = questions, answer_field

    def records(self) -> Iterator[tuple[str, object]]:
        data, dups = load_json(self.file(self.questions))
        if not isinstance(data, dict):
            raise ValueError(f"{self.questions}: expected an object keyed by question id")
        yield from skips_of(dups.items())
        for qid, q in data.items():
            yield f"question_id {qid}", (qid, q)

    def build(self, raw) -> list[Sample]:
        qid, q = raw
        qa = QA(_text(q["question"], "question"), _text(q[self.answer_field], self.answer_field))
        return [self.sample(qid, self.image(f"{q['imageId']}.jpg"), [qa])]


class POPE(Converter):
    name = "pope"
    files = ("questions",)
    tasks = ("adv",)

    def __init__(self, root, questions: str, **kw) -> None:
        super().__init__(root, **kw)
        self.questions = questions

    def records(self) -> Iterator[tuple[str, object]]:
        for n, row in iter_jsonl(self.file(self.questions)):
            yield f"line {n}", row

    def build(self, raw) -> list[Sample]:
        self.unique(raw["question_id"])
        label = _text(raw["label"], "label").lower()
        if label not in ("yes", "no"):
            raise Skip("bad_label", label)
        qa = QA(_text(raw["text"], "text"), label)
        return [self.sample(raw["question_id"], self.image(raw["image"]), [qa])]


class AOKVQA(Converter):
    name = "aokvqa"
    files = ("questions",)
    tasks = ("mcvqa", "common")

    def __init__(
        self,
        root,
        questions: str,
        image_pattern: str = "{image_id:012d}.jpg",
        **kw,
    ) -> None:
        super().__init__(root, **kw)
        self.questions, self.image_pattern = questions, image_pattern

    def records(self) -> Iterator[tuple[str, object]]:
        data, _ = load_json(self.file(self.questions))
        if not isinstance(data, list):
            raise ValueError(f"{self.questions}: expected a JSON list of questions")
        for i, q in enumerate(data):
            yield f"item {i}", q

    def build(self, raw) -> list[Sample]:
        self.unique(raw["question_id"])
        choices = [_text(c, "choices") for c in raw["choices"]]
        idx = raw["correct_choice_idx"]
        if not isinstance(idx, int) or not 0 <= idx < len(choices) or len(choices) > 26:
            raise Skip("bad_choice_index", f"{idx} of {len(choices)} choices")
        question = _text(raw["question"], "question")
        image = self.image(self.image_pattern.format(image_id=int(raw["image_id"])))
        if self.task == "mcvqa":
            qa = QA(question, letter(idx), options=choices)
        else:
            qa = QA(question, choices[idx])
        return [self.sample(raw["question_id"], image, [qa])]
