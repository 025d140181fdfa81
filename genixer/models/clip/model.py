"""The CLIP of the CLIP-driven filter: build, save, load, tokenizer.

The paper (GENIXER.md, "Data filtering") crops each generated box out of its image, scores the
crop against the referring expression with CLIP ViT-L/14 and keeps crops of at least 50 px a side
whose score passes a threshold. The filter's parts:

- this module: :func:`build_clip` builds a tiny CLIP from a spec dict through open_clip's own
  classes (``open_clip.model.CLIP`` with ``CLIPVisionCfg`` / ``CLIPTextCfg``); :func:`save_clip`
  / :func:`load_clip` keep it as ``open_clip_model.safetensors`` + ``clip_spec.json`` (pickled
  weights are refused). :func:`load_openai_clip` loads the real OpenAI ViT-L/14 from a LOCAL
  file. :func:`clip_tokenizer` is open_clip's own ``SimpleTokenizer``: its BPE vocabulary
  (``bpe_simple_vocab_16e6.txt.gz``) ships inside the open_clip package, so it works offline.
  It has 49408 tokens, so every spec needs ``vocab_size >= 49408``.
- :mod:`genixer.models.clip.scorer`: pixel preprocessing and the :class:`CropScorer` (crop the
  box, score it against the expression: cosine, the original's raw dot product, or a margin).
- :mod:`genixer.models.clip.train`: contrastive training through Lightning
  (:func:`genixer.training.fit.fit_module`), like every other model of the project.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
import zipfile
from collections.abc import Callable

import open_clip
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer
from safetensors.torch import load_file, save_file

from genixer.models.weights import weight_files

# OpenAI CLIP's pixel statistics (the same numbers as ``genixer.models.llava.model.CLIP_MEAN/STD``).
OPENAI_MEAN: tuple[float, float, float] = tuple(open_clip.constants.OPENAI_DATASET_MEAN)  # type: ignore[assignment]
OPENAI_STD: tuple[float, float, float] = tuple(open_clip.constants.OPENAI_DATASET_STD)  # type: ignore[assignment]

WEIGHTS_NAME = "open_clip_model.safetensors"
SPEC_NAME = "clip_spec.json"
SPEC_KEYS = (
    "embed_dim",
    "image_size",
    "patch_size",
    "vision_width",
    "vision_layers",
    "vision_heads",
    "text_width",
    "text_layers",
    "text_heads",
    "context_length",
    "vocab_size",
)
OPTIONAL_SPEC_KEYS = ("quick_gelu",)  # OpenAI's checkpoints use QuickGELU; default False

Tokenizer = Callable[[list[str]], torch.Tensor]


# --------------------------------------------------------------------------- build / io


@functools.cache
def _tokenizer_vocab_size() -> int:
    return len(SimpleTokenizer().encoder)


def _check_spec(spec: dict) -> dict:
    spec = dict(spec)
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise ValueError(f"CLIP spec is missing {missing}")
    unknown = sorted(set(spec) - set(SPEC_KEYS) - set(OPTIONAL_SPEC_KEYS))
    if unknown:
        raise ValueError(
            f"unknown CLIP spec keys {unknown}; known: {SPEC_KEYS + OPTIONAL_SPEC_KEYS}"
        )
    for k in SPEC_KEYS:
        spec[k] = int(spec[k])
        if spec[k] <= 0:
            raise ValueError(f"CLIP spec {k} must be positive, got {spec[k]}")
    spec["quick_gelu"] = bool(spec.get("quick_gelu", False))
    if spec["image_size"] % spec["patch_size"]:
        raise ValueError(f"image_size {spec['image_size']} is not a multiple of patch_size")
    for w, h in (("vision_width", "vision_heads"), ("text_width", "text_heads")):
        if spec[w] % spec[h]:
            raise ValueError(f"{w}={spec[w]} is not divisible by {h}={spec[h]}")
    n_vocab = _tokenizer_vocab_size()
    if spec["vocab_size"] < n_vocab:
        raise ValueError(
            f"vocab_size {spec['vocab_size']} < {n_vocab}, the size of open_clip's tokenizer"
        )
    return spec


def build_clip(spec: dict) -> CLIP:
    """A (tiny) CLIP from a spec dict, built with open_clip's own classes, in eval mode.

    Keys: embed_dim, image_size, patch_size, vision_width, vision_layers, vision_heads,
    text_width, text_layers, text_heads, context_length, vocab_size (>= 49408, the size of
    open_clip's tokenizer); optional quick_gelu (default False). Seed torch before calling it
    for reproducible initial weights.
    """
    spec = _check_spec(spec)
    vision_cfg = CLIPVisionCfg(
        layers=spec["vision_layers"],
        width=spec["vision_width"],
        head_width=spec["vision_width"] // spec["vision_heads"],
        patch_size=spec["patch_size"],
        image_size=spec["image_size"],
    )
    text_cfg = CLIPTextCfg(
        context_length=spec["context_length"],
        vocab_size=spec["vocab_size"],
        width=spec["text_width"],
        heads=spec["text_heads"],
        layers=spec["text_layers"],
    )
    model = CLIP(
        spec["embed_dim"], vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=spec["quick_gelu"]
    )
    return model.eval()


def clip_tokenizer(context_length: int) -> SimpleTokenizer:
    """open_clip's BPE tokenizer (vocabulary shipped in the package, no download).

    Calling it on a list of strings gives a LongTensor ``[n, context_length]``: start token,
    lower-cased BPE tokens, end token (kept as the last token when a text is truncated), zeros.
    """
    return SimpleTokenizer(context_length=int(context_length))


def clip_spec_of(model: CLIP) -> dict:
    """The spec that :func:`build_clip` turns into ``model``'s architecture (for saving a
    loaded real checkpoint, e.g. OpenAI ViT-L/14, as a :func:`save_clip` folder)."""
    vis, txt = model.visual.transformer.resblocks, model.transformer.resblocks
    for blocks, width in (
        (vis, model.visual.conv1.out_channels),
        (txt, model.ln_final.normalized_shape[0]),
    ):
        if blocks[0].mlp.c_fc.out_features != 4 * width:
            raise ValueError("only CLIPs with an MLP ratio of 4 (all OpenAI ones) have a spec")
    return _check_spec(
        {
            "embed_dim": model.text_projection.shape[1],
            "image_size": model.visual.image_size[0],
            "patch_size": model.visual.patch_size[0],
            "vision_width": model.visual.conv1.out_channels,
            "vision_layers": len(vis),
            "vision_heads": vis[0].attn.num_heads,
            "text_width": model.ln_final.normalized_shape[0],
            "text_layers": len(txt),
            "text_heads": txt[0].attn.num_heads,
            "context_length": model.context_length,
            "vocab_size": model.vocab_size,
            "quick_gelu": isinstance(vis[0].mlp.gelu, open_clip.transformer.QuickGELU),
        }
    )


def save_clip(model: CLIP, spec: dict, directory: str | os.PathLike) -> None:
    """Write ``open_clip_model.safetensors`` + ``clip_spec.json`` to ``directory``."""
    spec = _check_spec(spec)
    os.makedirs(directory, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(directory, WEIGHTS_NAME))
    with open(os.path.join(directory, SPEC_NAME), "w") as f:
        json.dump(spec, f, indent=2, sort_keys=True)


def read_clip_spec(directory: str | os.PathLike) -> dict:
    with open(os.path.join(directory, SPEC_NAME)) as f:
        return json.load(f)


def load_clip(directory: str | os.PathLike) -> CLIP:
    """Load a CLIP written by :func:`save_clip` (eval mode, float32, CPU).

    Only safetensors are read: a folder holding only pickled weights (``.bin``/``.pt``...) is
    refused with :class:`genixer.models.weights.PickleOnlyError` (a ``ValueError``:
    unpickling can run arbitrary code).
    """
    directory = str(directory)
    weight_files(directory)  # FileNotFoundError, or PickleOnlyError with the conversion to run
    files = os.listdir(directory)
    if WEIGHTS_NAME not in files:
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory}")
    if SPEC_NAME not in files:
        raise FileNotFoundError(f"no {SPEC_NAME} in {directory}")
    model = build_clip(read_clip_spec(directory))
    model.load_state_dict(load_file(os.path.join(directory, WEIGHTS_NAME)), strict=True)
    return model.eval()


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def load_openai_clip(
    path: str | os.PathLike,
    model_name: str = "ViT-L-14",
    allow_torchscript: bool = False,
) -> CLIP:
    """OpenAI CLIP (default ViT-L/14, the paper's filter model) from a LOCAL file, eval, fp32.

    - ``*.safetensors`` holding the OpenAI/open_clip state dict: built through
      ``open_clip.create_model(model_name, pretrained=path, force_quick_gelu=True)``.
      QuickGELU is forced because OpenAI trained with it; open_clip's plain ``ViT-L-14`` config
      uses GELU and, with a file path instead of the ``openai`` tag, would not warn.
    - OpenAI's original ``ViT-L-14.pt`` is a TorchScript archive. It is read only with
      ``allow_torchscript=True`` (``torch.jit.load``; its state dict is then rebuilt with
      ``open_clip.model.build_model_from_openai_state_dict``). Other pickles are refused.

    - a transformers ``CLIPModel`` FOLDER (``openai/clip-vit-large-patch14`` as the HF hub
      holds it, the very folder Shikra's tower comes from): built from its config and
      converted to open_clip's names (:mod:`genixer.models.clip.convert_hf`); ``model_name`` is
      not used then.

    Never a tag: a path that is not an existing file or folder raises ``FileNotFoundError``
    (open_clip would otherwise try to download a tag such as ``"openai"``). Use
    ``clip_tokenizer(77)`` and ``OPENAI_MEAN``/``OPENAI_STD``, image size 224, with it.
    """
    path = str(path)
    if os.path.isdir(path):
        from genixer.models.clip.convert_hf import load_hf_clip_as_open_clip

        return load_hf_clip_as_open_clip(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no local CLIP checkpoint file at {path!r} (tags are not loaded)")
    if path.endswith(".safetensors"):
        model = open_clip.create_model(
            model_name, pretrained=path, force_quick_gelu=True, precision="fp32", device="cpu"
        )
        return model.eval()
    if _is_torchscript(path):
        if not allow_torchscript:
            raise ValueError(
                f"{path} is a TorchScript archive; pass allow_torchscript=True to read it, or "
                "convert it to safetensors once in a trusted environment"
            )
        with warnings.catch_warnings():  # torch.jit is deprecated; OpenAI's files are jit
            warnings.filterwarnings("ignore", message=".*torch.jit.load", category=FutureWarning)
            jit = torch.jit.load(path, map_location="cpu")
        # attn_mask is a constant open_clip rebuilds (a non-persistent buffer there).
        state = {k: v for k, v in jit.state_dict().items() if k != "attn_mask"}
        model = open_clip.model.build_model_from_openai_state_dict(state)
        return model.float().eval()
    raise ValueError(f"{path}: only .safetensors (or a TorchScript archive) are read, no pickles")
