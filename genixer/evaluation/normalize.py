"""Answer normalization in the style of the official VQAv2 evaluation.

``normalize_answer`` applies, in order:

1. newlines/tabs to spaces, strip, lowercase;
2. punctuation: commas inside numbers are removed (``"1,000" -> "1000"``), the characters in
   ``PUNCTUATION`` become spaces, and a period is removed unless a digit follows it
   (``"2.5"`` and ``".5"`` are kept, ``"dog."`` -> ``"dog"``), which is what the official
   period rule does in effect;
3. per word: number words to digits (``"two" -> "2"``, ``"none" -> "0"``), articles dropped,
   contractions written without an apostrophe restored (``"dont" -> "don't"``);
4. whitespace collapsed to single spaces.

The tables are written for this project. The contraction table leaves out forms that are
also ordinary words (``"shed"``, ``"wed"``, ``"ill"``, ``"well"``, ``"its"``, ...).
Differences from the official script: punctuation always becomes a space (the official one
sometimes deletes it, which only differs where a space would split a token) and number
words go up to twenty instead of ten.
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
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
    "twenty": "20",
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
_PUNCT_CLASS = re.compile("[" + re.escape("".join(PUNCTUATION)) + "]")


def process_punctuation(text: str) -> str:
    """Remove commas in numbers, turn punctuation into spaces, drop non-decimal periods."""
    text = _NUMBER_COMMA.sub("", text)
    text = _PUNCT_CLASS.sub(" ", text)
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", text)


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
