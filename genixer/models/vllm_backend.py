"""An optional vLLM backend for the LLaVA generator (``generate.backend=vllm``), for GPU
machines: ``pip install -e '.[vllm]'``. Never a core dependency (vLLM pins its own torch and
transformers), so it is imported only when asked for.

It produces the same raw rows as the transformers backend (``raw`` text, ``new_tokens``),
so parsing, records, shards and resume are the same. Each request is sampled with its own
seed (vLLM's per-request ``SamplingParams.seed``), so a request's text does not depend on
its batch. The texts are not byte-identical to the transformers backend's (other kernels,
other sampler): the stage's cache key includes the backend.

vLLM knows LLaVA-1.5 as ``LlavaForConditionalGeneration``; :func:`export_for_vllm` writes a
view of a generator folder (our ``genixer_vlm`` type with the MLP projector has the same
weight names) that vLLM loads: a ``llava`` config, links to the safetensors, the tokenizer.
Genixer_S (Shikra's linear projector) has no vLLM architecture and is refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from genixer.core.chat import Turn, prompt

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def export_for_vllm(model_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path) -> Path:
    """A folder vLLM can load: ``config.json`` as ``llava``, weights linked, tokenizer copied."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    config = json.loads((model_dir / "config.json").read_text())
    projector = config.pop("projector_type", "mlp2x_gelu")
    if projector != "mlp2x_gelu":
        raise ValueError(
            f"vLLM serves LLaVA-1.5 (mlp2x_gelu projector), not a {projector!r} projector; "
            "use generate.backend=hf for Genixer_S"
        )
    config["model_type"] = "llava"
    config["architectures"] = ["LlavaForConditionalGeneration"]
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.suffix == ".safetensors" or f.name.endswith(".safetensors.index.json"):
            link = out_dir / f.name
            if not link.exists():
                os.symlink(f.resolve(), link)
    for name in TOKENIZER_FILES:
        src = Path(tokenizer_dir) / name
        if src.exists():
            shutil.copy(src, out_dir / name)
    tmp = out_dir / "config.json.tmp"
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    os.replace(tmp, out_dir / "config.json")
    return out_dir


class VllmPredictor:
    """The sharded runner's predictor on a vLLM engine (created lazily, in the process that
    runs the batches; the engine itself spreads over the GPUs: ``tensor_parallel_size``)."""

    def __init__(
        self,
        model_dir: str | Path,
        root: str | Path,
        decoding: dict,
        eos_token: str = "</s>",
        engine_args: dict | None = None,
    ) -> None:
        if not vllm_available():
            raise ImportError(
                "generate.backend=vllm needs vLLM: pip install -e '.[vllm]' (GPU machines only)"
            )
        self.model_dir = str(model_dir)
        self.root = str(root)
        self.decoding = dict(decoding)
        self.eos_token = eos_token
        self.engine_args = dict(engine_args or {})
        self._llm = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_llm"] = None  # engines do not pickle; each process makes its own
        return state

    def llm(self):
        if self._llm is None:
            from vllm import LLM

            self._llm = LLM(
                model=self.model_dir,
                tokenizer=self.model_dir,
                trust_remote_code=False,
                seed=0,
                **self.engine_args,
            )
        return self._llm

    def prepare(self, reqs: list[dict]) -> list:
        from genixer.world.base import load_image

        return [load_image(self.root, r["image"]) for r in reqs]

    def sampling_params(self, seed: int):
        from vllm import SamplingParams

        t = float(self.decoding["temperature"])
        top_p = self.decoding.get("top_p")
        return SamplingParams(
            n=1,
            temperature=t,
            top_p=1.0 if top_p is None or t == 0 else float(top_p),
            max_tokens=int(self.decoding["max_new_tokens"]),
            seed=int(seed),
            stop=[self.eos_token],
            skip_special_tokens=True,
        )

    def predict(self, model, images: list, reqs: list[dict]) -> list[dict]:
        inputs = []
        for img, r in zip(images, reqs, strict=True):
            turns: list[Turn] = [(r["instruction"], None)]
            inputs.append({"prompt": prompt(turns), "multi_modal_data": {"image": img}})
        params = [self.sampling_params(r["seed"]) for r in reqs]
        outputs = self.llm().generate(inputs, params, use_tqdm=False)
        rows = []
        for r, out in zip(reqs, outputs, strict=True):
            completion = out.outputs[0]
            n = len(completion.token_ids)
            rows.append(dict(r, raw=completion.text.strip(), new_tokens=n))
        return rows
