"""The generator stage: the base model trained on the generator pairs (image + two-level
instruction -> the whole sample as text), with a share of plain VQA kept in the mix."""

from __future__ import annotations

import random
from pathlib import Path

from genixer.models.family import family
from genixer.pipeline.artifacts import fit_vlm, images_by_id, project_tokenizer, vlm_examples
from genixer.pipeline.stage import Inputs, RunContext, Stage
from genixer.pipeline.stages.collect import read_plain
from genixer.pipeline.stages.pairs import read_pairs


def generator_examples(ctx: RunContext, inputs: Inputs) -> list:
    """The pairs as ``(image, [(instruction, target)])``, plus plain VQA conversations at
    ``gen_train.plain_qa_share`` of the mix: without them the generator forgets how to answer."""
    by_id = images_by_id(inputs["world"].path)
    pairs = read_pairs(inputs["pairs"].path)
    examples = [(by_id[p["image_id"]], [(p["instruction"], p["target"])]) for p in pairs]
    plain = read_plain(inputs["collect"].path)
    share = ctx.cfg.generator.gen_train.plain_qa_share
    n_plain = int(len(examples) * share / max(1e-6, 1 - share))
    rng = random.Random(f"{ctx.seed}:mix")
    return examples + vlm_examples(rng.sample(plain, min(n_plain, len(plain))), by_id)


class TrainGenerator(Stage):
    name, version, phase = "train_generator", 1, "train_generator"
    reads = {"base": "train_base", "collect": "collect", "pairs": "pairs"}
    uses = {"world": "world"}

    def key(self, ctx: RunContext) -> dict:
        return {
            "train": ctx.cfg.generator.gen_train,
            "trainer": ctx.trainer_key(),
            "seed": ctx.seed,
        }

    def run(self, ctx: RunContext, inputs: Inputs, folder: Path) -> dict:
        base, kind = inputs["base"].path / "model", family(ctx.cfg.generator)
        model = kind.load(base)
        project = project_tokenizer(inputs["collect"].path)
        processor = kind.processor(model, base, project)
        examples = generator_examples(ctx, inputs)
        train = ctx.cfg.generator.gen_train
        world = inputs["world"].path
        info = fit_vlm(
            ctx,
            model,
            processor,
            examples,
            train=train,
            world=world,
            folder=folder,
            seed=ctx.seed + 1,
        )
        kind.save(model, processor, folder / "model", project)
        return info
