"""Answer normalization of the official VQA evaluation (VQAv2, VizWiz, TextVQA).

``normalize_answer`` applies, in order, what the official script does:

1. newlines/tabs to spaces, strip, lowercase;
2. punctuation (``PUNCTUATION``; the apostrophe is not in it, so ``"man's"`` stays): a mark
   is deleted when it touches a space in the text, or when the text holds a comma between
   two digits (then every mark is deleted, so ``"1,000" -> "1000"``); otherwise it becomes a
   space (``"t-shirt" -> "t shirt"``). Then a period is removed unless a digit follows it
   (``"2.5"`` and ``".5"`` stay, ``"dog." -> "dog"``);
3. per word: number words zero..ten to digits (``"two" -> "2"``, ``"none" -> "0"``),
   articles dropped, contractions written without an apostrophe restored
   (``"dont" -> "don't"``);
4. whitespace collapsed to single spaces.

The tables are written for this project. The contraction table leaves out forms that are
also ordinary words (``"shed"``, ``"wed"``, ``"ill"``, ``"well"``, ``"its"``, ...).
One deliberate difference: the official script normalizes only when the ten human answers
disagree; here both sides are always normalized (LLaVA's evaluation normalizes predictions
beforehand anyway), so ``"Two"`` matches ten ``"2"`` answers.
"""

from __future__ import annotations

import re

PUNCTUATION: tuple[str, ...] = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)

ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

NUMBER_WORDS: dict[str, str] = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}

CONTRACTIONS: dict[str, str] = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "couldve": "could've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hes": "he's",
    "hows": "how's",
    "im": "i'm",
    "isnt": "isn't",
    "itd": "it'd",
    "itll": "it'll",
    "ive": "i've",
    "lets": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "oclock": "o'clock",
    "shant": "shan't",
    "shes": "she's",
    "shouldnt": "shouldn't",
    "shouldve": "should've",
    "thats": "that's",
    "theres": "there's",
    "theyd": "they'd",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "wasnt": "wasn't",
    "werent": "weren't",
    "weve": "we've",
    "whats": "what's",
    "whens": "when's",
    "wheres": "where's",
    "whos": "who's",
    "whys": "why's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "wouldve": "would've",
    "yall": "y'all",
    "youd": "you'd",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}

_NUMBER_COMMA = re.compile(r"(?<=\d),(?=\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")


def process_punctuation(text: str) -> str:
    """The official punctuation step: delete or space out marks, drop non-decimal periods."""
    delete_all = _NUMBER_COMMA.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def process_words(text: str) -> str:
    """Map number words to digits, drop articles, restore contractions; join with spaces."""
    out: list[str] = []
    for word in text.split():
        word = NUMBER_WORDS.get(word, word)
        if word in ARTICLES:
            continue
        out.append(CONTRACTIONS.get(word, word))
    return " ".join(out)


def normalize_answer(text: str) -> str:
    """Normalize a VQA answer (prediction or ground truth) for comparison."""
    text = text.replace("\n", " ").replace("\t", " ").strip().lower()
    return process_words(process_punctuation(text))
