"""The project tokenizer: a small byte-level BPE trained on the project's own text.

Digits are split one by one before the byte-level step, so numbers such as box coordinates
(``0.125``) are spelled digit by digit: the model learns one token per digit instead of an
arbitrary split of each number. Byte-level BPE covers every byte, so nothing is ever
``<unk>`` and ``decode(encode(text)) == text`` holds for any text without special tokens.

Special tokens sit at fixed ids at the start of the vocabulary (see ``SPECIAL_TOKENS``):
the chat format's tokens, then the three tokens the Fuyu judge's processor needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from genixer.core.chat import BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN, UNK_TOKEN

# Fuyu's processor writes these into its prompts (speaker marker, image row break, BOS-like
# separator); the judge needs them as single tokens.
FUYU_SPEAKER = "|SPEAKER|"
FUYU_NEWLINE = "|NEWLINE|"
FUYU_BEGIN_ANSWER = "<0x04>"

# Order matters: token i gets id i.
SPECIAL_TOKENS: tuple[str, ...] = (
    PAD_TOKEN,
    BOS_TOKEN,
    EOS_TOKEN,
    UNK_TOKEN,
    IMAGE_TOKEN,
    FUYU_SPEAKER,
    FUYU_NEWLINE,
    FUYU_BEGIN_ANSWER,
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            # No prefix space: the round trip must be exact.
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``corpus`` and wrap it for transformers.

    Deterministic: the same corpus (in the same order) gives the same vocabulary.
    ``vocab_size`` counts the special tokens and the 256 byte tokens, so it must be larger
    than ``len(SPECIAL_TOKENS) + 256``; a small corpus may give fewer merges than asked.
    Encoding never adds ``<s>`` by itself: the processor decides where it goes.
    """
    backend = byte_level_bpe(corpus, vocab_size, SPECIAL_TOKENS)
    for i, token in enumerate(SPECIAL_TOKENS):  # guard the fixed-id contract
        if backend.token_to_id(token) != i:
            raise RuntimeError(f"special token {token!r} did not get id {i}")
    return _wrap(backend)


def byte_level_bpe(
    corpus: Iterable[str], vocab_size: int, special_tokens: Iterable[str]
) -> Tokenizer:
    """The byte-level BPE (digits split one by one) behind :func:`build_tokenizer` and the
    tiny checkpoints of :mod:`genixer.models.hf.tiny`; the special tokens get the first ids."""
    special_tokens = list(special_tokens)
    floor = len(special_tokens) + 256
    if vocab_size <= floor:
        raise ValueError(f"vocab_size must be > {floor} (special tokens + 256 bytes)")
    backend = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=special_tokens,
        # All 256 bytes, whether or not the corpus has them: no text is ever out of vocabulary.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    return backend


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        add_bos_token=False,
        add_eos_token=False,
        # transformers' clean-up would glue " ," into ",": it breaks the exact round trip.
        clean_up_tokenization_spaces=False,
        padding_side="right",
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | os.PathLike) -> None:
    """Write the tokenizer to ``directory`` (created if needed)."""
    os.makedirs(directory, exist_ok=True)
    tokenizer.save_pretrained(str(directory))


def load_tokenizer(directory: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by :func:`save_tokenizer` (local files only, no hub)."""
    if not os.path.isfile(os.path.join(directory, "tokenizer.json")):
        raise FileNotFoundError(f"no tokenizer.json in {directory}")
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def load_checkpoint_tokenizer(directory: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The tokenizer that ships with a real checkpoint (llava-hf, Fuyu-8B, a converted LLaVA /
    Shikra release): local files only, never remote code. A real checkpoint is trained with
    its own vocabulary, so it must never be paired with the project tokenizer."""
    from transformers import AutoTokenizer

    if os.path.isfile(os.path.join(directory, "tokenizer.json")):
        return load_tokenizer(directory)
    try:
        return AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True, trust_remote_code=False
        )
    except Exception as err:  # the reasons are many (no files, no sentencepiece, ...)
        raise ValueError(
            f"no usable tokenizer in {directory} ({type(err).__name__}: {err}). A checkpoint "
            "folder needs tokenizer.json; a sentencepiece-only tokenizer.model also needs the "
            "`sentencepiece` package. Or pass --tokenizer with a folder holding tokenizer.json "
            "of the same vocabulary (e.g. the llava-hf or Vicuna release's)."
        ) from err


def tokenizer_at(
    model_dir: str | os.PathLike, fallback: PreTrainedTokenizerBase
) -> PreTrainedTokenizerBase:
    """The tokenizer a saved model was trained with: a real checkpoint's own (stored beside
    its weights), else ``fallback`` (the project tokenizer built from the collection)."""
    if (Path(model_dir) / "tokenizer.json").is_file():
        return load_tokenizer(model_dir)
    return fallback
