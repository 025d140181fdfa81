"""LLaVA-Instruct conversations -> MD (multi-turn dialogue) or Common VQA samples.

Layout (``conversation_58k.json``, ``llava_instruct_150k.json``): a list of
``{"id": "000000033471", "image": "000000033471.jpg", "conversations": [{"from": "human",
"value": "<image>\\nWhat are the colors of the bus in the image?"}, {"from": "gpt", "value":
"The bus in the image is white and red."}, ...]}``. The ``<image>`` placeholder is removed.
``task=md``: a conversation becomes dialogues of 2-3 turns (a long one is split evenly);
``task=common``: each turn is its own sample.

The same image id appears in several LLaVA subsets (conversation / detail / reasoning), so
an entry is a duplicate only when its id AND its conversation repeat an earlier one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from genixer.core.record import QA
from genixer.sources.datasets.base import Converter, Sample, Skip, chunk_sizes, load_json

IMAGE_TOKEN = "<image>"


def _clean(value: object) -> str:
    if not isinstance(value, str):
        raise Skip("bad_value", "a turn's value is not text")
    text = value.replace(IMAGE_TOKEN, "").strip()
    if not text:
        raise Skip("empty_text", "an empty turn")
    return text


def conversation_turns(conversations: object) -> list[QA]:
    """``(human, gpt)`` pairs of a LLaVA conversation; ``bad_roles`` when they do not
    alternate human, gpt, human, gpt, ..."""
    if not isinstance(conversations, list) or not conversations:
        raise Skip("no_turns")
    if len(conversations) % 2:
        raise Skip("bad_roles", f"{len(conversations)} messages (odd)")
    turns = []
    for i in range(0, len(conversations), 2):
        human, gpt = conversations[i], conversations[i + 1]
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise Skip("bad_roles", f"messages {i}-{i + 1}: {human.get('from')}, {gpt.get('from')}")
        turns.append(QA(_clean(human["value"]), _clean(gpt["value"])))
    return turns


class LLaVAInstruct(Converter):
    name = "llava_instruct"
    files = ("conversations",)
    tasks = ("md", "common")

    def __init__(self, root, conversations: str, **kw) -> None:
        super().__init__(root, **kw)
        self.conversations = conversations

    def records(self) -> Iterator[tuple[str, object]]:
        data, _ = load_json(self.file(self.conversations))
        if not isinstance(data, list):
            raise ValueError(f"{self.conversations}: expected a JSON list of conversations")
        for i, entry in enumerate(data):
            yield f"item {i}", entry

    def build(self, raw) -> list[Sample]:
        if "image" not in raw:
            raise Skip("no_image", f"id {raw.get('id')}: a text-only conversation")
        turns = conversation_turns(raw["conversations"])
        blob = json.dumps(raw["conversations"], sort_keys=True).encode()
        self.unique((raw["id"], hashlib.sha1(blob).hexdigest()))
        image = self.image(raw["image"])
        if self.task == "common":
            return [self.sample(f"{raw['id']}:{i}", image, [t]) for i, t in enumerate(turns)]
        sizes = chunk_sizes(len(turns), *self._task.num_turns)
        if not sizes:
            raise Skip("too_few_turns", f"id {raw['id']}: {len(turns)} turn(s)")
        out, start = [], 0
        for n in sizes:
            out.append(self.sample(f"{raw['id']}:{start}", image, turns[start : start + n]))
            start += n
        return out
