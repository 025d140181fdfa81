"""Instruction data collection: labeled scenes -> generator training pairs (two-level
templates), plain VQA conversations, and the tokenizer's corpus."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable

from genixer.chat import prompt as chat_prompt
from genixer.record import QA, read_jsonl, write_jsonl
from genixer.tasks import get_task
from genixer.tasks.base import judge_prompt
from genixer.tasks.templates import (
    GENERIC_INSTRUCTIONS,
    MC_ANSWER_HINT,
    TASK_SUFFIX,
    instruction,
)
from genixer.utils import to_plain
from genixer.world.base import WorldImage
from genixer.world.questions import BY_NAME, CAPTION_QUESTION, KINDS
from genixer.world.questions import caption as caption_of

PAIRS = "pairs.jsonl"
PLAIN = "plain_qa.jsonl"


def generator_pairs(
    images: Iterable[WorldImage],
    tasks: list[str],
    share: dict[str, float],
    tau: dict[str, float],
    seed: int,
    options: dict[str, dict] | None = None,
) -> tuple[list[dict], Counter]:
    """One row per (image, task) draw: ``share[task]`` samples per image on average;
    ``options[task]`` goes to that task's ``sample`` (e.g. REC's ``expression_kinds``)."""
    options = options or {}
    for name, opts in options.items():
        allowed = get_task(name).sample_options if name in tasks else None
        if allowed is None or not set(opts or {}) <= set(allowed):
            raise ValueError(
                f"sample_options.{name}: {sorted(opts or {})}; "
                + (f"{name} takes {list(allowed)}" if allowed is not None else f"tasks are {tasks}")
            )
    rng = random.Random(f"{seed}:collect")
    skipped: Counter = Counter()
    rows = []
    for img in images:
        for name in tasks:
            task = get_task(name)
            n = int(share.get(name, 1.0)) + (rng.random() < share.get(name, 1.0) % 1)
            for _ in range(n):
                turns = task.sample(img.scene, rng, **(options.get(name) or {}))
                if turns is None:
                    skipped[f"{name}:no_valid_sample"] += 1
                    continue
                template_id, text = instruction(name, rng, tau.get(name, 0.0))
                rows.append(
                    {
                        "image_id": img.id,
                        "image": img.path,
                        "task": name,
                        "template_id": template_id,
                        "instruction": text,
                        "target": task.serialize(turns),
                        "kinds": [t.kind for t in turns],
                    }
                )
    return rows, skipped


def plain_conversation(
    scene,
    rng: random.Random,
    kinds: Iterable[str] | None = None,
    repeat: dict | None = None,
    caption: bool = False,
) -> list[QA]:
    """Every kind of question the scene allows, once (``repeat``: up to that many distinct
    questions of a kind), in random order: dense VQA supervision (one image's questions in
    one multi-turn sequence learn faster than one per sequence). ``caption``: a dense
    caption of the scene as the last turn."""
    out = []
    for kind in KINDS:
        if kinds is not None and kind.name not in kinds:
            continue
        wanted = int((repeat or {}).get(kind.name, 1))
        seen: set[str] = set()
        for _ in range(4 * wanted):  # a few draws: a scene may allow fewer distinct ones
            asked = kind.ask(scene, rng)
            if asked is None:  # the scene does not allow this kind (no unique shape, ...)
                break
            if asked[0] in seen:
                continue
            seen.add(asked[0])
            out.append(QA(asked[0], asked[1], kind=kind.name))
            if len(seen) == wanted:
                break
    rng.shuffle(out)
    if caption:
        out.append(QA(CAPTION_QUESTION, caption_of(scene), kind="caption"))
    return out


def task_conversation(scene, rng: random.Random, tasks: list[str], per_task: int = 2) -> list:
    """A multi-turn conversation of samples from the given tasks, in their downstream form
    (e.g. REC questions answered with boxes for a Shikra-style model)."""
    turns = []
    for name in tasks:
        task = get_task(name)
        for _ in range(per_task):
            sample = task.sample(scene, rng)
            if sample is not None:
                kinds = [t.kind for t in sample]
                for (q, a), k in zip(
                    task.conversation(sample), kinds + [kinds[-1]] * 9, strict=False
                ):
                    turns.append((q, a, k))
    rng.shuffle(turns)
    return turns


def plain_rows(
    images: Iterable[WorldImage],
    seed: int,
    tag: str,
    tasks: list[str] | None = None,
    per_task: int = 2,
    repeat: dict | None = None,
    caption: bool = False,
    single: dict | None = None,
) -> list[dict]:
    """One multi-turn conversation per image: every question kind once (``tasks`` None;
    ``repeat`` asks some kinds more often, ``caption`` ends with a dense caption), or
    samples of the given tasks in their downstream form; or, with ``single``, single-turn
    questions instead (see ``single_turn_rows``)."""
    _check_plain_options(repeat, caption, tasks, single)
    if single:
        return single_turn_rows(images, seed, tag, single)
    rng = random.Random(f"{seed}:{tag}")
    rows = []
    for img in images:
        if tasks is None:
            turns = [
                (t.question, t.answer, t.kind)
                for t in plain_conversation(img.scene, rng, repeat=repeat, caption=caption)
            ]
        else:
            turns = task_conversation(img.scene, rng, tasks, per_task)
        rows.append(_plain_row(img, turns))
    return rows


def _plain_row(img: WorldImage, turns: list[tuple[str, str, str]]) -> dict:
    """A plain-VQA row of ``(question, answer, kind)`` turns about one image."""
    return {
        "image_id": img.id,
        "image": img.path,
        "turns": [[q, a] for q, a, _ in turns],
        "kinds": [k for _, _, k in turns],
    }


def single_turn_rows(images: Iterable[WorldImage], seed: int, tag: str, single: dict) -> list[dict]:
    """``single["per_image"]`` rows per image of ``single["turns"]`` questions each (default
    1: single-turn). A kind named in ``single["kind_share"]`` is asked that share of the time;
    the rest is spread evenly over the other kinds (a kind the scene does not allow, or a
    question already asked, is redrawn from the others). No answer leaks from an earlier turn
    of the row: in the plain conversations a third of the ``object_at`` answers are named by
    an earlier turn's question, so the model can copy them instead of looking (measured)."""
    per_image, turns, weights = _check_single(single)
    rng = random.Random(f"{seed}:{tag}:single")
    rows = []
    for img in images:
        for _ in range(per_image):
            asked: list[tuple[str, str, str]] = []
            for _ in range(turns):
                got = _draw_question(img.scene, rng, weights, asked)
                if got is not None:
                    asked.append(got)
            if asked:
                rows.append(_plain_row(img, asked))
    return rows


def _draw_question(
    scene, rng: random.Random, weights: dict[str, float], asked: list[tuple[str, str, str]]
) -> tuple[str, str, str] | None:
    """``(question, answer, kind)`` of a kind drawn by ``weights``; a kind the scene does not
    allow, or whose question leaks, is dropped and the draw repeated; None when none is left."""
    left = dict(weights)
    while left:
        name = rng.choices(list(left), weights=list(left.values()))[0]
        got = BY_NAME[name].ask(scene, rng)
        if got is not None and not _leaks(got[0], got[1], asked):
            return got[0], got[1], name
        del left[name]
    return None


def _leaks(question: str, answer: str, earlier: list[tuple[str, str, str]]) -> bool:
    """The question was asked already, or an earlier turn names its answer or is answered by
    what it names ("Where is the red circle?" -> "top left", then "Identify the object at
    the top left.")."""

    def names(text: str, phrase: str) -> bool:
        return re.search(rf"\b{re.escape(phrase.lower())}\b", text.lower()) is not None

    return any(q == question or names(q, answer) or names(question, a) for q, a, _ in earlier)


def _check_single(single: dict) -> tuple[int, int, dict[str, float]]:
    """``(per_image, turns, weight per kind)`` of a ``plain_single`` config, or a ValueError."""
    unknown_keys = sorted(set(single) - {"per_image", "turns", "kind_share"})
    if unknown_keys:
        raise ValueError(f"plain_single takes per_image, turns and kind_share, not {unknown_keys}")
    per_image, turns = single.get("per_image"), single.get("turns", 1)
    for name, value in (("per_image", per_image), ("turns", turns)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"plain_single.{name} must be an integer >= 1, got {value!r}")
    share = {k: float(v) for k, v in (single.get("kind_share") or {}).items()}
    unknown = sorted(set(share) - set(BY_NAME))
    if unknown:
        raise ValueError(f"plain_single.kind_share names unknown kind(s) {unknown}")
    if any(not 0.0 <= v <= 1.0 for v in share.values()) or sum(share.values()) > 1.0 + 1e-9:
        raise ValueError(f"plain_single.kind_share: shares in [0, 1] adding to <= 1, got {share}")
    others = [k.name for k in KINDS if k.name not in share]
    rest = (1.0 - sum(share.values())) / len(others) if others else 0.0
    weights = {k.name: share.get(k.name, rest) for k in KINDS}
    weights = {k: w for k, w in weights.items() if w > 0}
    if not weights:
        raise ValueError("plain_single.kind_share leaves no kind to ask")
    return per_image, turns, weights


def _check_plain_options(
    repeat: dict | None, caption: bool, tasks: list[str] | None, single: dict | None = None
) -> None:
    """A typo'd kind, or an option that cannot apply (the plain VQA conversations' repeat and
    caption, with ``plain_tasks`` or ``plain_single`` set), would otherwise be silently
    ignored."""
    for name, value in (("plain_repeat", repeat), ("plain_caption", caption)):
        for other, set_ in (("plain_tasks", tasks is not None), ("plain_single", bool(single))):
            if value and set_:
                raise ValueError(f"{name} applies to plain VQA conversations; {other} is set")
    if single and tasks is not None:
        raise ValueError(
            f"plain_single asks the world's question kinds; plain_tasks {tasks} is set"
        )
    if not repeat:
        return
    unknown = sorted(set(repeat) - set(BY_NAME))
    if unknown:
        raise ValueError(f"plain_repeat names unknown kind(s) {unknown}; kinds: {sorted(BY_NAME)}")
    bad = {k: v for k, v in repeat.items() if not (isinstance(v, int) and v >= 1)}
    if bad:
        raise ValueError(f"plain_repeat counts must be integers >= 1, got {bad}")


def kind_shares(rows: Iterable[dict]) -> dict[str, float]:
    counts = Counter(k for r in rows for k in r["kinds"])
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in sorted(counts.items())}


def tokenizer_corpus(pairs: list[dict], plain: list[dict]) -> list[str]:
    """Every text the models will read or write, so common words become single tokens."""
    corpus = list(GENERIC_INSTRUCTIONS) + list(TASK_SUFFIX.values()) + [MC_ANSWER_HINT]
    corpus += [chat_prompt([(r["instruction"], r["target"])]) for r in pairs]
    for r in plain[:2000]:
        corpus.append(chat_prompt([tuple(t) for t in r["turns"]]))
        corpus += [judge_prompt(QA(q, a)) + " Yes No" for q, a in r["turns"]]
    return corpus


def read_pairs(folder) -> list[dict]:
    return list(read_jsonl(folder / PAIRS))


def read_plain(folder) -> list[dict]:
    return list(read_jsonl(folder / PLAIN))


def write_pairs(folder, pairs: list[dict]) -> None:
    write_jsonl(folder / PAIRS, pairs)


def write_plain(folder, plain: list[dict]) -> None:
    write_jsonl(folder / PLAIN, plain)


def effective_tau(collection) -> dict[str, float]:
    """Each task's tau (its generic-instruction-only share): ``tau_all``, when set, for every
    task (the tau ablation's one knob), else the per-task ``tau`` dict."""
    tau_all = collection.get("tau_all")
    if tau_all is None:
        return {k: float(v) for k, v in collection["tau"].items()}
    tau_all = float(tau_all)
    if not 0.0 <= tau_all <= 1.0:
        raise ValueError(f"generator.collection.tau_all must lie in [0, 1], got {tau_all}")
    return {t: tau_all for t in collection["tasks"]}


# Opt-in options that shape the built-in world's draws: absent from the collect stage's key
# when off (so earlier collections stay valid), refused with world=collection.
WORLD_DRAW_OPTIONS = ("plain_repeat", "plain_caption", "plain_single", "sample_options")


def collection_key(collection) -> dict:
    """What of the collection config decides the collect stage (plain conversations, the
    tokenizer, the samples' targets): everything but ``tau_all``, the tau ablation's knob.
    The tokenizer's corpus holds the pairs at the per-task ``tau`` as configured; a tau
    sweep (``tau_all``) changes only each pair's instruction level (the ``pairs`` stage),
    so it re-uses the tokenizer and the base model."""
    key = dict(to_plain(collection))
    key.pop("tau_all", None)
    for knob in WORLD_DRAW_OPTIONS:
        if not key.get(knob):
            key.pop(knob, None)
    return key


def pairs_key(collection) -> dict:
    """The ``pairs`` stage's key: the effective tau, not how it was spelt (``tau_all=0.2``
    and a tau dict of 0.2 everywhere give the same key)."""
    return {"tau": effective_tau(collection)}
