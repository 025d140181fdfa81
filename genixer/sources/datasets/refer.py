"""Referring data -> REC and REG samples.

- RefCOCO / RefCOCO+ / RefCOCOg (REFER layout): ``refs(unc).p`` (or the same list as JSON):
  ``[{"ref_id", "ann_id", "image_id", "split", "category_id", "sent_ids", "file_name",
  "sentences": [{"sent_id", "sent", "raw", "tokens"}]}]`` and ``instances.json`` (COCO):
  ``{"images": [{"id", "file_name", "width", "height"}], "annotations": [{"id", "image_id",
  "bbox": [x, y, w, h], "category_id", ...}]}``. One sample per sentence. Only the
  ``splits`` asked for are read (default ``train``: val/testA/testB are the benchmarks).
  The pickle is read with an unpickler that refuses anything but plain data.
- Visual Genome regions: ``region_descriptions.json``: ``[{"id": image_id, "regions":
  [{"region_id", "image_id", "phrase", "x", "y", "width", "height"}]}]``; images
  ``VG_100K/<id>.jpg`` or ``VG_100K_2/<id>.jpg``; sizes from ``image_data.json``
  (``[{"image_id" or "id", "width", "height"}]``) when given, else from the image file.
"""

from __future__ import annotations

from collections.abc import Iterator

from genixer.core.boxes import format_box, xywh_to_xyxy
from genixer.sources.datasets.base import (
    Converter,
    Sample,
    Skip,
    check_box,
    load_json,
    load_plain_pickle,
    top_level,
)
from genixer.tasks import rec, reg
from genixer.tasks.rec import grounded_qa


def _phrase(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Skip("empty_expression", field)
    return " ".join(value.split()).rstrip(" .")


class _Referring(Converter):
    tasks = ("rec", "reg")

    def pair(self, expression: str, box) -> list:
        if self.task == "rec":
            return [grounded_qa(rec.QUESTION.format(expression=expression), format_box(box))]
        return [grounded_qa(reg.QUESTION.format(box=format_box(box)), expression)]


class RefCOCO(_Referring):
    name = "refcoco"
    files = ("refs", "instances")

    def __init__(
        self,
        root,
        refs: str,
        instances: str,
        splits: list[str] | tuple[str, ...] = ("train",),
        sentence_field: str = "sent",
        **kw,
    ) -> None:
        super().__init__(root, **kw)
        self.refs, self.instances = refs, instances
        self.splits = set(splits)
        self.sentence_field = sentence_field

    def records(self) -> Iterator[tuple[str, object]]:
        inst, _ = load_json(self.file(self.instances))
        images, anns = {}, {}
        for kind, table, items in (
            ("image", images, top_level(inst, "images", self.instances)),
            ("annotation", anns, top_level(inst, "annotations", self.instances)),
        ):
            for i, item in enumerate(items):
                if not isinstance(item, dict) or "id" not in item:
                    yield f"{kind} {i}", Skip("missing_field", "id")
                elif item["id"] in table:
                    yield f"{kind} id {item['id']}", Skip(f"duplicate_{kind}_id", str(item["id"]))
                else:
                    table[item["id"]] = item
        path = self.file(self.refs)
        refs = load_plain_pickle(path) if path.suffix in (".p", ".pkl") else load_json(path)[0]
        if not isinstance(refs, list):
            raise ValueError(f"{self.refs}: expected a list of refs")
        for i, ref in enumerate(refs):
            yield f"ref {i}", (ref, images, anns)

    def build(self, raw) -> list[Sample | Skip]:
        ref, images, anns = raw
        sentences = ref["sentences"]
        n = len(sentences)
        if ref["split"] not in self.splits:
            self.excluded[f"split_{ref['split']}"] += n
            return []
        self.unique(ref["ref_id"])
        ann = anns.get(ref["ann_id"])
        if ann is None:
            raise Skip("unknown_ann_id", str(ref["ann_id"]), n)
        img = images.get(ref["image_id"])
        if img is None:
            raise Skip("unknown_image_id", str(ref["image_id"]), n)
        try:
            image = self.image(img["file_name"])
            box = check_box(xywh_to_xyxy(ann["bbox"]), img["width"], img["height"], self.tolerance)
        except Skip as s:
            raise Skip(s.reason, s.detail, n) from None
        out: list[Sample | Skip] = []
        for sent in sentences:
            if not isinstance(sent, dict) or self.sentence_field not in sent:
                out.append(Skip("missing_field", f"sentence {self.sentence_field!r}"))
                continue
            try:
                expression = _phrase(sent[self.sentence_field], self.sentence_field)
            except Skip as s:
                out.append(s)
                continue
            source = f"{ref['ref_id']}:{sent.get('sent_id')}"
            out.append(self.sample(source, image, self.pair(expression, box)))
        return out


class VGRegions(_Referring):
    name = "vg_regions"
    files = ("regions", "image_data")
    tasks = ("reg", "rec")

    def __init__(
        self,
        root,
        regions: str,
        image_data: str | None = None,
        image_dirs: list[str] | tuple[str, ...] = ("VG_100K", "VG_100K_2"),
        **kw,
    ) -> None:
        super().__init__(root, **kw)
        self.regions, self.image_data = regions, image_data
        self.image_dirs = list(image_dirs)

    def records(self) -> Iterator[tuple[str, object]]:
        sizes = {}
        if self.image_data:
            data, _ = load_json(self.file(self.image_data))
            for i, im in enumerate(data):
                try:
                    sizes[im.get("image_id", im.get("id"))] = (im["width"], im["height"])
                except (KeyError, AttributeError):
                    yield f"image_data {i}", Skip("missing_field", "width/height")
        data, _ = load_json(self.file(self.regions))
        if not isinstance(data, list):
            raise ValueError(f"{self.regions}: expected a list of images with regions")
        for i, entry in enumerate(data):
            yield f"image {i}", (entry, sizes)

    def build(self, raw) -> list[Sample | Skip]:
        entry, sizes = raw
        regions = entry["regions"]
        image_id = entry.get("id", entry.get("image_id"))
        if image_id is None:
            raise Skip("missing_field", "id", len(regions))
        try:
            image = self.image(*(f"{d}/{image_id}.jpg" for d in self.image_dirs))
            width, height = sizes.get(image_id) or self.images.size(image)
        except Skip as s:
            raise Skip(s.reason, s.detail, len(regions)) from None
        out: list[Sample | Skip] = []
        for r in regions:
            try:
                self.unique(r["region_id"])
                xyxy = xywh_to_xyxy((r["x"], r["y"], r["width"], r["height"]))
                box = check_box(xyxy, width, height, self.tolerance)
                expression = _phrase(r["phrase"], "phrase")
            except Skip as s:
                out.append(Skip(s.reason, f"region {r.get('region_id')}: {s.detail}"))
                continue
            except (KeyError, TypeError, AttributeError) as err:
                out.append(Skip("missing_field", f"region {r}: {err}"[:120]))
                continue
            out.append(self.sample(r["region_id"], image, self.pair(expression, box)))
        return out
