"""The Fuyu judge: the third-party MLLM of the paper's Fuyu-driven data filter.

The judge is transformers' ``FuyuForCausalLM`` (a Persimmon decoder that embeds raw image
patches with one linear layer), built tiny from a spec or loaded from a local folder.

Token layout of one example (``P`` = ``|SPEAKER|``, one per image patch, ``N`` = ``|NEWLINE|``
at the end of every patch row, as Fuyu does)::

    P P P N P P P N P P P N <s> {prompt} <0x04> [{answer} </s>]

``<0x04>`` is Fuyu's "beginning of answer" token. The ``P`` positions get the patch
embeddings (``pixel_values`` of shape ``(batch, patches, patch*patch*3)``, scattered by the
model into the ``image_token_id`` positions). The answer and ``</s>`` are the only loss targets.

Two scores:

- :func:`yes_probability` (default): P("Yes") from the logits at the ``<0x04>`` position,
  batched and deterministic; optionally renormalized over {Yes, No}.
- :func:`sampled_score`: the original Genixer code's mode, kept for faithful reproduction:
  sample a short answer with top-k/top-p and take the geometric mean of the sampled tokens'
  probabilities after the warpers. It is NOT P(Yes) (a sampled "No" with high confidence
  scores high too) and it is random unless seeded; here each item is seeded with
  ``seed + index``. The original's off-by-one in the token alignment is not reproduced.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import FuyuConfig, FuyuForCausalLM, PreTrainedTokenizerBase

from genixer.core.chat import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN

PATCH_TOKEN = "|SPEAKER|"
ROW_END_TOKEN = "|NEWLINE|"
ANSWER_TOKEN = "<0x04>"
YES = "Yes"
NO = "No"
IGNORE_INDEX = -100

SPEC_KEYS = (
    "image_size",
    "patch_size",
    "hidden",
    "layers",
    "heads",
    "intermediate",
    "max_position_embeddings",
)

Item = tuple[Image.Image, str]


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of a special token, refusing tokenizers that lack it."""
    idx = tokenizer.convert_tokens_to_ids(token)
    if idx is None or (idx == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(f"the tokenizer has no {token!r} token")
    return int(idx)


def _first_token_id(tokenizer: PreTrainedTokenizerBase, tokens) -> int:
    """The id of the first of ``tokens`` the tokenizer has (padding only needs some id)."""
    vocab = tokenizer.get_vocab()
    for token in tokens:
        if token is not None and token in vocab:
            return int(vocab[token])
    raise ValueError(f"the tokenizer has none of {[t for t in tokens if t]}")


def build_judge(spec: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> FuyuForCausalLM:
    """A randomly initialised Fuyu judge from a small spec.

    ``spec`` keys: image_size, patch_size, hidden, layers, heads, intermediate,
    max_position_embeddings. Vocabulary size and special ids come from ``tokenizer``.
    Initialisation uses torch's global RNG: seed it before calling for a reproducible model.
    """
    missing = [k for k in SPEC_KEYS if k not in spec]
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if missing or unknown:
        raise ValueError(f"judge spec: missing keys {missing}, unknown keys {unknown}")
    if spec["image_size"] % spec["patch_size"]:
        raise ValueError("judge spec: image_size must be a multiple of patch_size")
    if spec["hidden"] % spec["heads"]:
        raise ValueError("judge spec: hidden must be a multiple of heads")
    ids = {
        "pad_token_id": _token_id(tokenizer, PAD_TOKEN),
        "bos_token_id": _token_id(tokenizer, BOS_TOKEN),
        "eos_token_id": _token_id(tokenizer, EOS_TOKEN),
    }
    text_config = {
        "model_type": "persimmon",
        "vocab_size": len(tokenizer),
        "hidden_size": spec["hidden"],
        "intermediate_size": spec["intermediate"],
        "num_hidden_layers": spec["layers"],
        "num_attention_heads": spec["heads"],
        "max_position_embeddings": spec["max_position_embeddings"],
        "hidden_act": "relu2",  # Persimmon/Fuyu's squared ReLU
        "qk_layernorm": True,
        **ids,
    }
    config = FuyuConfig(
        image_size=spec["image_size"],
        patch_size=spec["patch_size"],
        num_channels=3,
        image_token_id=_token_id(tokenizer, PATCH_TOKEN),
        text_config=text_config,
        **ids,
    )
    return FuyuForCausalLM(config)


def save_judge(model: FuyuForCausalLM, directory: str | Path) -> Path:
    """Save the judge's config and weights (safetensors) into ``directory``."""
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def load_judge(directory: str | Path) -> FuyuForCausalLM:
    """Load a judge saved by :func:`save_judge`, or a local Fuyu-8B folder (``adept/fuyu-8b``
    layout: flat Fuyu config, sharded safetensors with ``language_model.*`` and
    ``vision_embed_tokens.*`` keys, which transformers renames on load).

    Pickle-only folders are refused with the conversion command. Every weight must load:
    a missing or unused weight raises instead of leaving random layers.
    """
    from genixer.models.weights import weight_files

    directory = Path(directory)
    weight_files(directory)  # FileNotFoundError / PickleOnlyError (a ValueError) with how-to
    model, info = FuyuForCausalLM.from_pretrained(
        directory,
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
        output_loading_info=True,
    )
    bad = {k: sorted(v)[:6] for k, v in info.items() if k != "error_msgs" and v}
    if bad or info.get("error_msgs"):
        raise ValueError(
            f"{directory}: weights do not match the model: {bad or info['error_msgs']}"
        )
    return model


class JudgeProcessor:
    """(image, prompt[, answer]) -> Fuyu inputs; collate with left or right padding.

    Plain attributes only, so it pickles (DataLoader workers, ``ddp_spawn``). For a
    DataLoader use ``functools.partial(processor.collate, padding_side="right")``.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, image_size: int, patch_size: int):
        if image_size % patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.patch_id = _token_id(tokenizer, PATCH_TOKEN)
        self.row_end_id = _token_id(tokenizer, ROW_END_TOKEN)
        self.bos_id = _token_id(tokenizer, BOS_TOKEN)
        # Fuyu-8B's own tokenizer ends text with |ENDOFTEXT| and has no <pad> (its processor
        # pads with id 0): take the tokenizer's declared tokens when the chat's are missing.
        self.eos_id = _token_id(tokenizer, tokenizer.eos_token or EOS_TOKEN)
        self.pad_id = _first_token_id(
            tokenizer, (PAD_TOKEN, tokenizer.pad_token, tokenizer.unk_token)
        )
        self.answer_id = _token_id(tokenizer, ANSWER_TOKEN)
        # The scorer reads the first token of each answer; training answers are tokenized the
        # same way (on their own, no leading space), so they start with exactly these ids.
        self.yes_id = self._text_ids(YES)[0]
        self.no_id = self._text_ids(NO)[0]
        if self.yes_id == self.no_id:
            raise ValueError("'Yes' and 'No' must start with different tokens")

    @classmethod
    def for_model(
        cls, model: FuyuForCausalLM, tokenizer: PreTrainedTokenizerBase
    ) -> JudgeProcessor:
        """The processor matching a judge's image geometry."""
        return cls(tokenizer, model.config.image_size, model.config.patch_size)

    def _text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def image_patches(self, image: Image.Image) -> torch.Tensor:
        """RGB, scaled to fit the square keeping its aspect, padded bottom/right with black
        (Fuyu's layout), scaled to [-1, 1]; returns ``(patches, patch*patch*3)`` in row-major
        patch order, each patch flattened as (row, column, channel)."""
        image = image.convert("RGB")
        size = self.image_size
        scale = size / max(image.size)
        if image.size != (size, size):
            w, h = (max(1, round(d * scale)) for d in image.size)
            image = image.resize((min(w, size), min(h, size)), Image.BICUBIC)
        canvas = Image.new("RGB", (size, size), (0, 0, 0))
        canvas.paste(image, (0, 0))
        pixels = torch.from_numpy(np.asarray(canvas, dtype=np.float32)) / 127.5 - 1.0  # H, W, C
        g, p = self.grid, self.patch_size
        patches = pixels.reshape(g, p, g, p, 3).permute(0, 2, 1, 3, 4)  # rows, cols, p, p, C
        return patches.reshape(g * g, p * p * 3)

    def image_token_ids(self) -> list[int]:
        """The placeholder ids: one patch token per patch, a row-end token after each row."""
        return ([self.patch_id] * self.grid + [self.row_end_id]) * self.grid

    def encode(
        self, image: Image.Image, prompt: str, answer: str | None = None
    ) -> dict[str, torch.Tensor]:
        """One example. With ``answer`` the result has ``labels`` on the answer + ``</s>`` only."""
        if answer is not None:
            return self.encode_turns(image, [(prompt, answer)])
        ids = [*self.image_token_ids(), self.bos_id, *self._prompt_ids(prompt)]
        return {"pixel_values": self.image_patches(image), "input_ids": torch.tensor(ids)}

    def encode_turns(
        self, image: Image.Image, turns: list[tuple[str, str]]
    ) -> dict[str, torch.Tensor]:
        """A training sequence of one or more answered prompts about one image,
        ``<s> {p1} <0x04> {a1} </s> {p2} <0x04> {a2} </s> ...``, labels on every answer and
        its ``</s>``. One turn is exactly what :meth:`encode` gives with an answer; several
        turns are dense VQA supervision (the judge learns to see from them)."""
        if not turns:
            raise ValueError("a judge example needs at least one turn")
        ids = [*self.image_token_ids(), self.bos_id]
        labels = [IGNORE_INDEX] * len(ids)
        for prompt, answer in turns:
            prompt_ids = self._prompt_ids(prompt)
            target = [*self._text_ids(answer), self.eos_id]
            ids += prompt_ids + target
            labels += [IGNORE_INDEX] * len(prompt_ids) + target
        return {
            "pixel_values": self.image_patches(image),
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
        }

    def _prompt_ids(self, prompt: str) -> list[int]:
        """A prompt's ids up to and including the beginning-of-answer token."""
        ids = self._text_ids(prompt)
        if self.patch_id in ids:
            raise ValueError(f"the prompt must not contain {PATCH_TOKEN}")
        return [*ids, self.answer_id]

    def collate(
        self, items: list[dict[str, torch.Tensor]], padding_side: str = "left"
    ) -> dict[str, torch.Tensor]:
        """Pad encoded examples into a batch whose keys ``FuyuForCausalLM.forward`` accepts.

        Position ids count real tokens only, so an example gets the same positions (and the
        same scores) whatever the padding around it. Use left padding for scoring/generation.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        with_labels = {"labels" in item for item in items}
        if len(with_labels) != 1:
            raise ValueError("either every example has labels or none has")
        width = max(len(item["input_ids"]) for item in items)
        batch: dict[str, list[torch.Tensor]] = {"input_ids": [], "attention_mask": []}
        if True in with_labels:
            batch["labels"] = []

        def pad(t: torch.Tensor, value: int) -> torch.Tensor:
            fill = torch.full((width - len(t),), value, dtype=t.dtype)
            return torch.cat([fill, t] if padding_side == "left" else [t, fill])

        for item in items:
            batch["input_ids"].append(pad(item["input_ids"], self.pad_id))
            batch["attention_mask"].append(pad(torch.ones_like(item["input_ids"]), 0))
            if "labels" in batch:
                batch["labels"].append(pad(item["labels"], IGNORE_INDEX))
        out = {key: torch.stack(values) for key, values in batch.items()}
        out["position_ids"] = (out["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        out["pixel_values"] = torch.stack([item["pixel_values"] for item in items])
        return out


class JudgePatchFeatures(nn.Module):
    """The judge's own patch features: its linear patch embedding and first ``layer``
    decoder layers run over the image tokens alone, read at the patch positions.

    Fuyu has no vision encoder; pretraining these features to name what lies under each
    patch (:func:`genixer.models.vision_pretrain.pretrain_patches`) gives the judge eyes
    before it learns to judge from one yes/no bit per example.
    """

    def __init__(self, model: FuyuForCausalLM, processor: JudgeProcessor, layer: int = 1):
        super().__init__()
        self.model = model
        self.layer = layer
        ids = torch.tensor(processor.image_token_ids())
        self.register_buffer("input_ids", ids, persistent=False)
        self.register_buffer("is_patch", ids == processor.patch_id, persistent=False)
        self.hidden_size = model.config.text_config.hidden_size
        self.num_patches = int(self.is_patch.sum())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        ids = self.input_ids.expand(len(pixel_values), -1)
        out = self.model.model(input_ids=ids, pixel_values=pixel_values, output_hidden_states=True)
        return out.hidden_states[self.layer][:, self.is_patch]


def _to_model(batch: dict[str, torch.Tensor], model: FuyuForCausalLM) -> dict[str, torch.Tensor]:
    device, dtype = model.device, model.dtype
    return {
        k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in batch.items()
    }


@torch.no_grad()
def yes_probability(
    model: FuyuForCausalLM,
    processor: JudgeProcessor,
    items: list[Item],
    batch_size: int = 32,
    renormalize: bool = False,
) -> list[float]:
    """P("Yes") at the first answer position for each (image, prompt), in order.

    One forward pass per batch, left padded, logits of the last position (``<0x04>``) only.
    ``renormalize=True`` returns P(Yes) / (P(Yes) + P(No)).
    """
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = processor.collate([processor.encode(im, pr) for im, pr in chunk], "left")
            logits = model(**_to_model(batch, model), logits_to_keep=1).logits[:, -1]
            probs = logits.float().softmax(-1)
            p_yes, p_no = probs[:, processor.yes_id], probs[:, processor.no_id]
            score = p_yes / (p_yes + p_no) if renormalize else p_yes
            scores.extend(score.tolist())
    finally:
        model.train(was_training)
    return scores


def _warp(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then top-p (nucleus) filtering of one logit vector; returns probabilities."""
    logits = logits.float().clone()
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = -math.inf
    if top_p < 1.0:
        probs = logits.softmax(-1)
        sorted_probs, order = probs.sort(descending=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs
        drop = mass_before >= top_p  # keep the smallest head reaching top_p (always >= 1)
        logits[order[drop]] = -math.inf
    return logits.softmax(-1)


@torch.no_grad()
def sampled_score(
    model: FuyuForCausalLM,
    processor: JudgeProcessor,
    items: list[Item],
    seed: int,
    max_new_tokens: int = 8,
    top_k: int = 10,
    top_p: float = 0.95,
) -> list[float]:
    """The original paper code's score (opt-in, for faithful reproduction); NOT P(Yes).

    For each item, sample up to ``max_new_tokens`` answer tokens (stopping at ``</s>``) with
    top-k then top-p filtering, and return the geometric mean of the sampled tokens'
    probabilities under the filtered, renormalized distribution. It is random by nature;
    item ``i`` uses a ``torch.Generator`` seeded with ``seed + i``, so it is reproducible.
    One item at a time with a KV cache: it is the slow baseline.
    """
    was_training = model.training
    model.eval()
    scores: list[float] = []
    try:
        for index, (image, prompt) in enumerate(items):
            generator = torch.Generator().manual_seed(seed + index)
            batch = _to_model(processor.collate([processor.encode(image, prompt)]), model)
            out = model(**batch, use_cache=True, logits_to_keep=1)
            log_probs: list[float] = []
            for _ in range(max_new_tokens):
                probs = _warp(out.logits[0, -1].cpu(), top_k, top_p)
                token = int(torch.multinomial(probs, 1, generator=generator))
                log_probs.append(math.log(float(probs[token])))
                if token == processor.eos_id:
                    break
                # Later steps feed the new token only; the image stays in the cache.
                out = model(
                    input_ids=torch.tensor([[token]], device=model.device),
                    cache=out.cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
            scores.append(math.exp(sum(log_probs) / len(log_probs)))
    finally:
        model.train(was_training)
    return scores
