"""Pointing data -> PointQA samples.

- PointQA-Local (Mani et al., "Point and Ask"), in either layout:
  the release's ``localqa_dataset.json``, an object keyed by Visual Genome image id:
  ``{"<image_id>": [{"question", "all_ans", "all_objs": [{"x", "y", "w", "h", ...}],
  "points": [{"x", "y", "ans"}]}]}`` (point i lies on object i and ``ans`` is its answer),
  restricted to the ids of ``localqa_train_imgs.json`` when ``image_list`` is given; or
  Shikra's ``pointQA_local_train.jsonl``: ``{"qa_id", "genome_id", "file_path", "question",
  "answer", "bbox": [x0, y0, x1, y1], "point": [x, y], "img_w", "img_h"}``.
  The question names the point (``where=point``), the object's box (``box``), or either,
  picked per record by a stable hash (``mixed``), and is answered in words.
- Visual7W pointing, in either layout: the release's ``dataset_v7w_pointing.json``:
  ``{"images": [{"image_id", "filename", "split", "qa_pairs": [{"qa_id", "question",
  "answer": box_id, "multiple_choices": [box_id, ...], "type"}]}], "boxes": [{"box_id", "x",
  "y", "width", "height", "name"}]}``; or Shikra's ``v7w_pointing_train.jsonl``:
  ``{"file_path", "question", "candidates": [[x0, y0, x1, y1], ...], "answer": [x0, y0, x1,
  y1]}``. The candidates (answer + distractors, in a stable per-question order) are listed
  in the question and the answer is one of them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from genixer.core.boxes import format_box, format_point, xywh_to_xyxy
from genixer.core.record import stable_seed
from genixer.sources.datasets.base import (
    Converter,
    Sample,
    Skip,
    check_box,
    check_point,
    iter_jsonl,
    load_json,
    top_level,
)
from genixer.tasks.pointqa import candidates_question, point_question
from genixer.tasks.rec import grounded_qa

WHERE = ("point", "box", "mixed")


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Skip("empty_text", field)
    return " ".join(value.split())


class PointQALocal(Converter):
    name = "pointqa_local"
    files = ("questions", "image_list")
    tasks = ("pointqa",)

    def __init__(
        self,
        root,
        questions: str,
        image_list: str | None = None,
        image_dirs: list[str] | tuple[str, ...] = ("VG_100K", "VG_100K_2"),
        where: str = "point",
        **kw,
    ) -> None:
        super().__init__(root, **kw)
        if where not in WHERE:
            raise ValueError(f"pointqa_local: where must be one of {WHERE}, got {where!r}")
        self.questions, self.image_list, self.where = questions, image_list, where
        self.image_dirs = list(image_dirs)

    def records(self) -> Iterator[tuple[str, object]]:
        path = self.file(self.questions)
        if path.suffix == ".jsonl":
            for n, row in iter_jsonl(path):
                yield f"line {n}", ("jsonl", row)
            return
        keep = None
        if self.image_list:
            ids, _ = load_json(self.file(self.image_list))
            keep = {str(i) for i in ids}
            self.file(self.questions)  # the ledger names the questions file again
        data, _ = load_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{self.questions}: expected an object keyed by image id")
        for image_id, entries in data.items():
            if keep is not None and str(image_id) not in keep:
                self.excluded["not_in_image_list"] += len(entries)
                continue
            for qi, entry in enumerate(entries):
                yield f"image {image_id} question {qi}", ("release", image_id, qi, entry)

    def _where(self, source_id: str, box, point) -> str:
        where = self.where
        if where == "mixed":
            where = "point" if stable_seed("pointqa", source_id) % 2 else "box"
        return format_point(point) if where == "point" else format_box(box)

    def build(self, raw) -> list[Sample | Skip]:
        if raw[0] == "jsonl":
            row = raw[1]
            self.unique(row["qa_id"])
            image = self.image(row["file_path"])
            w, h = (row["img_w"], row["img_h"]) if "img_w" in row else self.images.size(image)
            box = check_box(row["bbox"], w, h, self.tolerance)
            point = check_point(row["point"], w, h, self.tolerance)
            return [
                self._sample(
                    row["qa_id"], image, row["question"], row["answer"], box=box, point=point
                )
            ]
        _, image_id, qi, entry = raw
        points, objs = entry["points"], entry["all_objs"]
        if len(points) != len(objs):
            raise Skip("points_objects_mismatch", f"{len(points)} points, {len(objs)} objects")
        try:
            image = self.image(*(f"{d}/{image_id}.jpg" for d in self.image_dirs))
            w, h = self.images.size(image)
        except Skip as s:
            raise Skip(s.reason, s.detail, len(points)) from None
        out: list[Sample | Skip] = []
        for pi, (pt, obj) in enumerate(zip(points, objs, strict=True)):
            try:
                box = check_box(
                    xywh_to_xyxy((obj["x"], obj["y"], obj["w"], obj["h"])), w, h, self.tolerance
                )
                point = check_point((pt["x"], pt["y"]), w, h, self.tolerance)
                out.append(
                    self._sample(
                        f"{image_id}:{qi}:{pi}",
                        image,
                        entry["question"],
                        pt["ans"],
                        box=box,
                        point=point,
                    )
                )
            except Skip as s:
                out.append(s)
            except (KeyError, TypeError) as err:
                out.append(Skip("missing_field", f"point {pi}: {err}"))
        return out

    def _sample(self, source_id, image: str, question, answer, *, box, point) -> Sample:
        q = point_question(_text(question, "question"), self._where(str(source_id), box, point))
        return self.sample(source_id, image, [grounded_qa(q, _text(answer, "answer"))])


class Visual7WPointing(Converter):
    name = "visual7w"
    files = ("questions",)
    tasks = ("pointqa",)

    def __init__(
        self,
        root,
        questions: str,
        splits: list[str] | tuple[str, ...] = ("train",),
        **kw,
    ) -> None:
        super().__init__(root, **kw)
        self.questions = questions
        self.splits = set(splits)

    def records(self) -> Iterator[tuple[str, object]]:
        path = self.file(self.questions)
        if path.suffix == ".jsonl":
            for n, row in iter_jsonl(path):
                yield f"line {n}", ("jsonl", n, row)
            return
        data, _ = load_json(path)
        boxes = {}
        for i, b in enumerate(top_level(data, "boxes", self.questions)):
            if not isinstance(b, dict) or "box_id" not in b:
                yield f"box {i}", Skip("missing_field", "box_id")
            else:
                boxes[b["box_id"]] = b
        for i, image in enumerate(top_level(data, "images", self.questions)):
            if not isinstance(image, dict) or not isinstance(image.get("qa_pairs"), list):
                yield f"image {i}", Skip("missing_field", "qa_pairs")
                continue
            pairs = image["qa_pairs"]
            if image.get("split") not in self.splits:
                self.excluded[f"split_{image.get('split')}"] += len(pairs)
                continue
            for qa in pairs:
                yield f"qa_id {qa.get('qa_id')}", ("release", image, qa, boxes)

    def build(self, raw) -> list[Sample | Skip]:
        if raw[0] == "jsonl":
            _, n, row = raw
            image = self.image(row["file_path"])
            w, h = self.images.size(image)
            cands = [check_box(b, w, h, self.tolerance) for b in row["candidates"]]
            answer = check_box(row["answer"], w, h, self.tolerance)
            if answer not in cands:
                raise Skip("answer_not_a_candidate", str(row["answer"]))
            return [self._sample(f"line {n}", image, row["question"], cands, answer)]
        _, img, qa, boxes = raw
        self.unique(qa["qa_id"])
        image = self.image(img["filename"])
        w, h = self.images.size(image)
        ids = [qa["answer"], *qa["multiple_choices"]]
        missing = [i for i in ids if i not in boxes]
        if missing:
            raise Skip("unknown_box_id", str(missing))
        found = [boxes[i] for i in ids]
        cands = [
            check_box(xywh_to_xyxy((b["x"], b["y"], b["width"], b["height"])), w, h, self.tolerance)
            for b in found
        ]
        order = list(range(len(cands)))
        random.Random(stable_seed("visual7w", qa["qa_id"])).shuffle(order)
        return [
            self._sample(qa["qa_id"], image, qa["question"], [cands[i] for i in order], cands[0])
        ]

    def _sample(self, source_id, image: str, question, cands, answer) -> Sample:
        if len(cands) < 2:
            raise Skip("too_few_candidates", str(len(cands)))
        q = candidates_question(_text(question, "question"), cands)
        return self.sample(source_id, image, [grounded_qa(q, format_box(answer))])
