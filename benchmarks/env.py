"""What every comparison runs on: the project's own config, a small built-in world, the
project tokenizer trained on that world's text, and the tiny models built from the config
with random weights (throughput does not depend on what the weights learned)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from genixer.core.build import build
from genixer.models.fuyu.processor import JudgeProcessor
from genixer.models.llava.model import processor_for, save_vlm
from genixer.models.tokenizer import build_tokenizer, save_tokenizer
from genixer.pipeline.stages import collect as C
from genixer.training.fit import seed_model_init
from genixer.world.base import WorldImage

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The project's Hydra config, composed the way the tests do it."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=list(overrides or []))


def ban_tokens(model: torch.nn.Module, token_ids: list[int]):
    """Make ``model`` never produce ``token_ids`` (their logits become -inf).

    Used to force a fixed number of new tokens: with ``</s>`` banned, every row of every path
    generates exactly ``max_new_tokens`` tokens, whatever the random weights favour. The
    same hook is on the model for ours and for the baseline, so it costs both alike.
    Returns the hook handle (``.remove()`` undoes it).
    """

    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    on_device: dict[torch.device, torch.Tensor] = {}  # one copy per device, made once

    def hook(module, args, output):
        index = on_device.get(output.device)
        if index is None:
            index = on_device[output.device] = ids.to(output.device)
        return output.index_fill_(-1, index, float("-inf"))

    return model.lm_head.register_forward_hook(hook)


@dataclass
class BenchEnv:
    cfg: DictConfig
    root: Path  # the materialized world
    splits: dict[str, list[WorldImage]]
    tokenizer: object
    work: Path  # scratch space for outputs (shards, logs), under the same temp dir

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    def scratch(self, name: str) -> Path:
        """A fresh, empty folder for one run's outputs."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work))
        return path

    # ------------------------------------------------------------------ models
    def generator(self):
        """Genixer_L as ``conf/generator/llava.yaml`` builds it, random weights, eval mode."""
        seed_model_init(self.seed, "bench-generator")
        model = build(self.cfg.generator.model, tokenizer=self.tokenizer).eval()
        return model, processor_for(model, self.tokenizer)

    def save_generator(self, folder: Path) -> Path:
        """The generator and tokenizer on disk, as the generate stage finds them."""
        model, _ = self.generator()
        save_vlm(model, folder / "model")
        save_tokenizer(self.tokenizer, folder / "tokenizer")
        return folder

    def judge(self):
        """The Fuyu judge of ``conf/filter/fuyu.yaml``, random weights, eval mode."""
        seed_model_init(self.seed, "bench-judge")
        model = build(self.cfg.filter.model, tokenizer=self.tokenizer).eval()
        return model, JudgeProcessor.for_model(model, self.tokenizer)

    def clip(self) -> tuple[object, DictConfig]:
        """The tiny open_clip CLIP of ``conf/filter/clip.yaml`` (random weights, eval mode)
        and that filter's config."""
        clip_cfg = compose_config(["filter=clip"]).filter
        seed_model_init(self.seed, "bench-clip")
        return build(clip_cfg.model).eval(), clip_cfg


def make_env(
    work: Path,
    pool: int,
    judge: int,
    collection: int = 200,
    overrides: list[str] | None = None,
) -> BenchEnv:
    """Compose the config, render a world with the given split sizes under ``work``, and
    train the project tokenizer on that world's collection text (as the collect stage does).
    """
    cfg = compose_config(
        [
            f"world.splits.collection={collection}",
            f"world.splits.pool={pool}",
            f"world.splits.judge={judge}",
            "world.splits.downstream=0",
            "world.splits.benchmark=0",
            *(overrides or []),
        ]
    )
    root = work / "world"
    world = build(cfg.world)
    splits = world.materialize(root)
    c = cfg.generator.collection
    pairs, _ = C.generator_pairs(
        splits["collection"], list(c.tasks), dict(c.share), dict(c.tau), int(cfg.seed)
    )
    plain = C.plain_rows(splits["collection"], int(cfg.seed), "plain")
    tokenizer = build_tokenizer(C.tokenizer_corpus(pairs, plain), int(cfg.generator.vocab_size))
    scratch = work / "runs"
    scratch.mkdir(parents=True, exist_ok=True)
    return BenchEnv(cfg, root, splits, tokenizer, scratch)
