"""The downstream model's seam: how an arm's model and its processor are made, trained and
scored. Everything model-specific of the downstream arms is here; the data reaches it as
``(image, turns)`` examples in the project's chat format, encoded by ``processor.encode``
and batched by ``processor.collate``, and the benchmarks are answered through
``generate(model, processor, ...)``. Another model family (a transformers
``AutoModelForImageTextToText`` with its own processor) needs only another branch of
:func:`downstream_model` returning a processor with those methods.
"""

from __future__ import annotations

from pathlib import Path

from genixer.core.record import write_jsonl
from genixer.evaluation.suite import evaluate_files
from genixer.evaluation.world_benchmark import ANSWERS, QUESTION_MAKERS, QUESTIONS, evaluate_vqa
from genixer.models.family import family
from genixer.models.llava.model import processor_for
from genixer.pipeline.artifacts import fit_dataset, new_vlm, project_tokenizer, world_splits
from genixer.pipeline.stage import Inputs, RunContext
from genixer.training.fit import seed_model_init
from genixer.training.roles import parameter_roles


def downstream_model(ctx: RunContext, inputs: Inputs, seed: int):
    """``(model, processor)`` for one arm: the tiny model of ``downstream.model`` (its tower
    from the vision pretraining stage, if it ran) with the project tokenizer, or the
    checkpoint of ``downstream.checkpoint`` in its family (a converted LLaVA-1.5 / Shikra
    folder's language model and vision tower with its own tokenizer; with family hf any
    transformers chat VLM with its own processor) and, with ``fresh_projector``, a newly
    initialised projector."""
    d = ctx.cfg.downstream
    if d.checkpoint is None:
        tokenizer = project_tokenizer(inputs["collect"].path)
        model = new_vlm(d.model, tokenizer, seed, "downstream", inputs.get("vision"))
        return model, processor_for(model, tokenizer)
    kind = family(d)
    model = kind.load(d.checkpoint)
    if d.fresh_projector:
        fresh_projector(model, seed)
    return model, kind.checkpoint_processor(model, d.checkpoint)


def check_checkpoint(ctx: RunContext) -> None:
    """Refuse, before any stage runs, a ``downstream.checkpoint`` its family cannot load."""
    d = ctx.cfg.downstream
    if d.checkpoint is not None:
        family(d).check(d.checkpoint)


def fresh_projector(model, seed: int) -> None:
    """Initialise the projector's linear maps anew (normal, the LM's initializer range;
    zero biases), seeded: LLaVA-1.5's stage 1 starts from a new projector. The projector is
    found by module role (genixer.training.roles), for any family."""
    import torch

    seed_model_init(seed, "downstream-projector")
    std = getattr(model.config.get_text_config(), "initializer_range", 0.02)
    roles = parameter_roles(model)
    with torch.no_grad():
        for name, layer in model.named_modules():
            if not isinstance(layer, torch.nn.Linear):
                continue
            if all(roles[f"{name}.{p}"] == "projector" for p, _ in layer.named_parameters()):
                layer.weight.normal_(0.0, std)
                if layer.bias is not None:
                    layer.bias.zero_()


def train_phase(ctx: RunContext, model, processor, dataset, *, train, folder: Path, seed: int):
    """One phase (``downstream.pretrain[i]`` or ``finetune``) on an arm's dataset."""
    return fit_dataset(ctx, model, processor, dataset, train=train, folder=folder, seed=seed)


def evaluate_world(ctx: RunContext, model, processor, world: Path, folder: Path, *, arm: str):
    """The built-in world's benchmark (its held-out split, as ``downstream.eval`` says)."""
    e = ctx.cfg.downstream.eval
    questions = QUESTION_MAKERS[e.metric](world_splits(world)["benchmark"], e.per_image, ctx.seed)
    write_jsonl(folder / QUESTIONS, questions)
    result = evaluate_vqa(
        model,
        processor,
        questions,
        root=world,
        batch_size=e.batch_size,
        max_new_tokens=e.max_new_tokens,
        answers_path=folder / ANSWERS,
        model_id=arm,
        metric=e.metric,
    )
    return result | {"score": result["accuracy"], "metric": e.metric}


def evaluate_benchmark(ctx: RunContext, model, processor, entry: dict, folder: Path, *, arm: str):
    """One entry of ``downstream.benchmarks`` read from its files: ``(metrics, ledger)``."""
    e = ctx.cfg.downstream.eval
    options = {
        k: entry[k] for k in ("split", "box_frame", "max_questions", "max_new_tokens") if k in entry
    }
    options |= {"seed": ctx.seed, "batch_size": e.batch_size, "model_id": arm}
    options.setdefault("max_new_tokens", e.max_new_tokens)
    label = entry.get("name") or entry["benchmark"]
    return evaluate_files(
        model,
        processor,
        benchmark=entry["benchmark"],
        annotations=list(entry["annotations"]),
        images=entry.get("images") or folder,
        folder=folder / "benchmarks" / label,
        options=options,
    )
